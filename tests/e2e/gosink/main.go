// Command gosink is a sink written with Numaflow's Go SDK (numaflow-go pkg/sinker), run unmodified
// as a UDSink's sidecar by the e2e tier: it hands every datum to the fallback sink, so the test
// reads each one back from the fallback topic with its keys and headers. The socket and
// server-info paths are the SDK's defaults, exactly as under Numaflow.
package main

import (
	"context"
	"log"

	sinksdk "github.com/numaproj/numaflow-go/pkg/sinker"
)

type toFallback struct{}

func (toFallback) Sink(_ context.Context, datums <-chan sinksdk.Datum) sinksdk.Responses {
	result := sinksdk.ResponsesBuilder()
	for d := range datums {
		result = result.Append(sinksdk.ResponseFallback(d.ID()))
	}
	return result
}

func main() {
	if err := sinksdk.NewServer(toFallback{}).Start(context.Background()); err != nil {
		log.Fatalf("gosink: %v", err)
	}
}
