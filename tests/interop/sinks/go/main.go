// Command interop-sink is the interop test sink for the Go SDK (numaflow-go pkg/sinker): the
// answer per datum comes from its `interop` header (see tests/interop/README.md); every datum
// received is printed as one JSON line prefixed with `INTEROP ` so the test can count what the
// sink saw. It runs unmodified: socket and server-info paths are the SDK's defaults.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sync"

	sinksdk "github.com/numaproj/numaflow-go/pkg/sinker"
)

type interopSink struct {
	role  string
	quiet bool // INTEROP_QUIET=1: print nothing per datum (benchmarks)
	mu    sync.Mutex
	seen  map[string]bool
}

// firstSight is true the first time this process sees an id.
func (s *interopSink) firstSight(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[id] {
		return false
	}
	s.seen[id] = true
	return true
}

func (s *interopSink) answer(d sinksdk.Datum) (sinksdk.Response, string) {
	id := d.ID()
	if s.role != "udsink" {
		return sinksdk.ResponseOK(id), "SUCCESS"
	}
	switch d.Headers()["interop"] {
	case "fail-once":
		if s.firstSight(id) {
			return sinksdk.ResponseFailure(id, "transient: try again"), "FAILURE"
		}
	case "nack-once":
		if s.firstSight(id) {
			delay := uint64(50)
			return sinksdk.ResponseNack(id, &sinksdk.NackOptions{Delay: &delay}), "NACK"
		}
	case "fallback":
		return sinksdk.ResponseFallback(id), "FALLBACK"
	case "serve":
		return sinksdk.ResponseServe(id, append([]byte("served:"), d.Value()...)), "SERVE"
	case "on-success":
		msg := sinksdk.NewMessage(append([]byte("followup:"), d.Value()...)).WithKeys(d.Keys())
		return sinksdk.ResponseOnSuccess(id, msg), "ON_SUCCESS"
	}
	return sinksdk.ResponseOK(id), "SUCCESS"
}

func (s *interopSink) Sink(_ context.Context, datums <-chan sinksdk.Datum) sinksdk.Responses {
	result := sinksdk.ResponsesBuilder()
	for d := range datums {
		response, status := s.answer(d)
		result = result.Append(response)
		if s.quiet {
			continue
		}
		line, _ := json.Marshal(map[string]any{
			"sdk":     "go",
			"role":    s.role,
			"id":      d.ID(),
			"keys":    d.Keys(),
			"value":   string(d.Value()),
			"headers": d.Headers(),
			"answer":  status,
		})
		fmt.Printf("INTEROP %s\n", line)
	}
	return result
}

func main() {
	role := os.Getenv("NUMAFLOW_UD_CONTAINER_TYPE")
	if role == "" {
		role = "udsink"
	}
	sink := &interopSink{role: role, quiet: os.Getenv("INTEROP_QUIET") == "1", seen: map[string]bool{}}
	if err := sinksdk.NewServer(sink).Start(context.Background()); err != nil {
		log.Fatalf("sink server: %v", err)
	}
}
