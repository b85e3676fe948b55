// Command kubelet is the upstream kubelet, built from the same pinned k8s.io/kubernetes module as
// the control plane, for the e2e tier's node (scripts/e2e_node.sh).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() { os.Exit(cli.Run(app.NewKubeletCommand(context.Background()))) }
