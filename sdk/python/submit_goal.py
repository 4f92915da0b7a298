"""Submits a goal to an agentmesh gateway over gRPC and watches it to the end.

    sdk/python/generate.sh            # once: writes sdk/python/gen
    PYTHONPATH=sdk/python/gen AGENTMESH_TARGET=127.0.0.1:8080 AGENTMESH_API_KEY=am_... \
      /usr/bin/python3 sdk/python/submit_goal.py echo '{"message": "hi"}'

Prints one JSON line: the goal id, its final status and output. With --check-invalid
it also sends a goal kind the contract refuses and prints the gateway's answer.
"""
import json
import os
import sys

import grpc
from google.protobuf import json_format, struct_pb2

from agentmesh.v1 import common_pb2, executor_pb2, executor_pb2_grpc


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    kind = args[0] if args else "echo"
    goal_input = struct_pb2.Struct()
    goal_input.update(json.loads(args[1]) if len(args) > 1 else {"message": "hello from Python"})
    target, key = os.environ["AGENTMESH_TARGET"], os.environ["AGENTMESH_API_KEY"]
    metadata = [("authorization", f"Bearer {key}")]

    # The gateway's plaintext loopback port speaks gRPC over HTTP/2 prior knowledge.
    with grpc.insecure_channel(target) as channel:
        executor = executor_pb2_grpc.ExecutorServiceStub(channel)
        submitted = executor.SubmitGoal(
            executor_pb2.SubmitGoalRequest(kind=kind, input=goal_input),
            metadata=metadata,
            timeout=30,
        )
        goal_id = submitted.goal.goal_id
        result = {"goalId": goal_id}
        for response in executor.WatchGoal(
            executor_pb2.WatchGoalRequest(goal_id=goal_id), metadata=metadata, timeout=60
        ):
            if response.event.WhichOneof("kind") == "finished":
                finished = response.event.finished
                result["status"] = common_pb2.GoalStatus.Name(finished.status)
                result["output"] = json_format.MessageToDict(finished.output)
                result["error"] = finished.error.message
                break
        if "--check-invalid" in sys.argv:
            try:
                executor.SubmitGoal(
                    executor_pb2.SubmitGoalRequest(kind="Text.Upper"), metadata=metadata, timeout=30
                )
                result["invalid"] = "accepted"
            except grpc.RpcError as err:
                result["invalid"] = {"code": err.code().name, "message": err.details()}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
