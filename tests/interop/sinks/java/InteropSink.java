// The interop test sink for the Java SDK (io.numaproj.numaflow.sinker): the answer per datum
// comes from its `interop` header (see tests/interop/README.md); every datum received is
// printed as one JSON line prefixed with `INTEROP ` so the test can count what the sink saw.
// It runs unmodified: socket and server-info paths are the SDK's defaults.

import io.numaproj.numaflow.sinker.Datum;
import io.numaproj.numaflow.sinker.DatumIterator;
import io.numaproj.numaflow.sinker.Response;
import io.numaproj.numaflow.sinker.ResponseList;
import io.numaproj.numaflow.sinker.Server;
import io.numaproj.numaflow.sinker.Sinker;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

public class InteropSink extends Sinker {
    private final String role;
    private final boolean quiet; // INTEROP_QUIET=1: print nothing per datum (benchmarks)
    private final Set<String> seen = ConcurrentHashMap.newKeySet();

    InteropSink(String role, boolean quiet) {
        this.role = role;
        this.quiet = quiet;
    }

    @Override
    public ResponseList processMessages(DatumIterator datums) {
        ResponseList.ResponseListBuilder result = ResponseList.newBuilder();
        while (true) {
            Datum d;
            try {
                d = datums.next();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (d == null) {
                break; // end of the batch
            }
            String id = d.getId();
            Map<String, String> headers = d.getHeaders();
            String want = "udsink".equals(role) && headers != null ? headers.getOrDefault("interop", "ok") : "ok";
            Response response;
            String status;
            if ("fail-once".equals(want) && seen.add(id)) {
                response = Response.responseFailure(id, "transient: try again");
                status = "FAILURE";
            } else if ("fallback".equals(want)) {
                response = Response.responseFallback(id);
                status = "FALLBACK";
            } else {
                response = Response.responseOK(id);
                status = "SUCCESS";
            }
            result.addResponse(response);
            if (quiet) {
                continue;
            }
            StringBuilder line = new StringBuilder("INTEROP {\"sdk\":\"java\",\"role\":");
            json(line, role).append(",\"id\":");
            json(line, id).append(",\"keys\":[");
            String[] keys = d.getKeys() == null ? new String[0] : d.getKeys();
            for (int i = 0; i < keys.length; i++) {
                json(i == 0 ? line : line.append(','), keys[i]);
            }
            line.append("],\"value\":");
            json(line, new String(d.getValue(), StandardCharsets.UTF_8)).append(",\"headers\":{");
            boolean first = true;
            for (Map.Entry<String, String> h : headers == null ? Map.<String, String>of().entrySet() : headers.entrySet()) {
                json(first ? line : line.append(','), h.getKey()).append(':');
                json(line, h.getValue());
                first = false;
            }
            line.append("},\"answer\":\"").append(status).append("\"}");
            System.out.println(line);
        }
        return result.build();
    }

    /** Appends s as a JSON string literal. */
    private static StringBuilder json(StringBuilder out, String s) {
        out.append('"');
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"');
    }

    public static void main(String[] args) throws Exception {
        String role = System.getenv().getOrDefault("NUMAFLOW_UD_CONTAINER_TYPE", "");
        boolean quiet = "1".equals(System.getenv("INTEROP_QUIET"));
        Server server = new Server(new InteropSink(role.isEmpty() ? "udsink" : role, quiet));
        server.start();
        server.awaitTermination();
    }
}
