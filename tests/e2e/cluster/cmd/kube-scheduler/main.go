// Command kube-scheduler is the upstream scheduler, built from the pinned k8s.io/kubernetes module:
// without it no pod is ever bound to the e2e tier's node.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() { os.Exit(cli.Run(app.NewSchedulerCommand())) }
