// A Numaflow Go SDK sink for the e2e tier (tests/e2e/test_pods.py); built into an image by
// scripts/e2e_node.sh. Not part of any shipped artefact.
module udsink.test/e2e/gosink

go 1.24

require github.com/numaproj/numaflow-go v0.12.0

require (
	golang.org/x/net v0.29.0 // indirect
	golang.org/x/sync v0.8.0 // indirect
	golang.org/x/sys v0.25.0 // indirect
	golang.org/x/text v0.18.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20240903143218-8af14fe29dc1 // indirect
	google.golang.org/grpc v1.67.1 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
)
