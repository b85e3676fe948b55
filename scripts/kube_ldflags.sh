#!/usr/bin/env bash
# kube_ldflags VERSION: the linker flags that stamp a Kubernetes build from the wrapper module
# (tests/e2e/cluster) with its release, shared by the control-plane and the node builds. Left
# unset, binaries report v0.0.0-master: the API server then fails the chart's kubeVersion
# constraint and the kubelet reports a version the API server does not expect.
kube_ldflags() {
  local version="$1" minor flags="-s -w" pkg
  minor="$(echo "${version}" | cut -d. -f2)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1"
    flags+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  done
  echo "${flags}"
}
