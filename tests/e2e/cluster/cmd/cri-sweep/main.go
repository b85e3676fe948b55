// Command cri-sweep stops and removes every pod sandbox of one CRI runtime endpoint.
//
// The kubelet leaves its pods running when it stops. Stopping a sandbox through the CRI is what
// runs the CNI DEL (the veth leaves the bridge) and removes the sandbox's network namespace, so
// the node harness sweeps with this before it stops containerd, and nothing stays behind.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cri-sweep unix:///path/to/containerd.sock")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods, err := client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: listing pod sandboxes: %v\n", err)
		os.Exit(1)
	}
	failed := 0
	for _, pod := range pods.Items {
		name := pod.Metadata.Namespace + "/" + pod.Metadata.Name
		if _, err := client.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: stopping %s: %v\n", name, err)
			failed++
			continue
		}
		if _, err := client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: removing %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Fprintf(os.Stderr, "cri-sweep: removed %s\n", name)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
