/**
 * Reads a request body as JSON, bounded: more than `maxBytes` is
 * RESOURCE_EXHAUSTED before it is all buffered, bad JSON is INVALID_ARGUMENT,
 * and the JSON's shape (nesting, list length, values) is checked against the
 * tenant's limits before it is parsed, so a hostile body costs one bounded scan.
 */
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { NodeRequest } from "../http-edge.js";
import { jsonShapeProblem, type ShapeLimits } from "../request-shape.js";

export async function readJsonBody(
  req: NodeRequest,
  limits: ShapeLimits & { maxBytes: number },
): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limits.maxBytes) {
      throw new MeshError(
        Code.ResourceExhausted,
        `request is larger than ${limits.maxBytes} bytes, the most this tenant may send`,
        { retryable: false, details: { tooLarge: true } },
      );
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  const problem = jsonShapeProblem(bytes, limits);
  if (problem) throw new MeshError(Code.InvalidArgument, problem);
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new MeshError(Code.InvalidArgument, "request body is not JSON", {
      details: { notJson: true },
    });
  }
}
