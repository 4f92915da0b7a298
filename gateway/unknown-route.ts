/**
 * The answer to a path no route serves, in the caller's protocol: gRPC and
 * gRPC-Web clients need `grpc-status` (a bare HTTP 404 reads as INTERNAL to
 * many of them), Connect clients a JSON error with HTTP 404; anything else a
 * plain 404. All say UNIMPLEMENTED and name the path.
 */
import type { NodeRequest, NodeResponse } from "./http-edge.js";

const unimplemented = 12;

export function unknownRoute(req: NodeRequest, res: NodeResponse): void {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  const message = `unknown method ${path.slice(0, 256)}`;
  if (type.startsWith("application/grpc")) {
    // Trailers-only: the status rides in the headers of an empty response.
    res.writeHead(200, {
      "content-type": type.split(";")[0] as string,
      "grpc-status": String(unimplemented),
      "grpc-message": encodeURIComponent(message),
    });
    res.end();
    return;
  }
  if (req.method === "POST" && (type.startsWith("application/") || type === "")) {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "unimplemented", message }));
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
}
