// Package agentmesh_test checks the generated Go clients against a running
// mesh: it submits a goal and watches it to the end over gRPC (grpc-go, the
// gateway's gRPC on h2c) and over Connect (connect-go, the gateway's HTTP),
// and sees the contract's validation rules refuse a bad goal kind.
//
// It needs a gateway: AGENTMESH_URL (e.g. http://127.0.0.1:8080) and
// AGENTMESH_API_KEY (a key with goals.write). Without them it skips, unless
// CI=true; `test/sdk-go.test.ts` starts a mesh and runs it.
package agentmesh_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	agentmeshv1 "agentmesh/sdk/go/gen/agentmesh/v1"
	"agentmesh/sdk/go/gen/agentmesh/v1/agentmeshv1connect"
)

func gateway(t *testing.T) (*url.URL, string) {
	t.Helper()
	raw, key := os.Getenv("AGENTMESH_URL"), os.Getenv("AGENTMESH_API_KEY")
	if raw == "" || key == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AGENTMESH_URL and AGENTMESH_API_KEY are required in CI")
		}
		t.Skip("set AGENTMESH_URL and AGENTMESH_API_KEY to run against a mesh")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u, key
}

func echoGoal(t *testing.T, via string) *agentmeshv1.SubmitGoalRequest {
	input, err := structpb.NewStruct(map[string]any{"message": "hello from Go over " + via})
	if err != nil {
		t.Fatal(err)
	}
	return &agentmeshv1.SubmitGoalRequest{Kind: "echo", Input: input}
}

func TestGoalOverGRPC(t *testing.T) {
	u, key := gateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The gateway serves gRPC on its plaintext loopback port with HTTP/2 prior knowledge (h2c).
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	executor := agentmeshv1.NewExecutorServiceClient(conn)

	submitted, err := executor.SubmitGoal(ctx, echoGoal(t, "gRPC"))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := executor.WatchGoal(ctx, &agentmeshv1.WatchGoalRequest{GoalId: submitted.GetGoal().GetGoalId()})
	if err != nil {
		t.Fatal(err)
	}
	var finished *agentmeshv1.GoalFinished
	for finished == nil {
		res, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch ended before the goal finished: %v", err)
		}
		finished = res.GetEvent().GetFinished()
	}
	if finished.GetStatus() != agentmeshv1.GoalStatus_GOAL_STATUS_SUCCEEDED {
		t.Fatalf("goal %s: %v", finished.GetStatus(), finished.GetError())
	}
	if !strings.Contains(finished.GetOutput().String(), "hello from Go over gRPC") {
		t.Fatalf("unexpected output %v", finished.GetOutput())
	}

	// The contract's rule on goal kinds (buf.validate) is enforced at the gateway.
	_, err = executor.SubmitGoal(ctx, &agentmeshv1.SubmitGoalRequest{Kind: "Text.Upper"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "kind: ") {
		t.Fatalf("a bad kind: want INVALID_ARGUMENT naming kind, got %v", err)
	}
}

func TestGoalOverConnect(t *testing.T) {
	u, key := gateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The Connect protocol streams from the server over plain HTTP/1.1 too.
	executor := agentmeshv1connect.NewExecutorServiceClient(
		http.DefaultClient, u.String(), connect.WithInterceptors(bearer(key)))

	submitted, err := executor.SubmitGoal(ctx, connect.NewRequest(echoGoal(t, "Connect")))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := executor.WatchGoal(ctx, connect.NewRequest(&agentmeshv1.WatchGoalRequest{
		GoalId: submitted.Msg.GetGoal().GetGoalId(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var finished *agentmeshv1.GoalFinished
	for finished == nil && stream.Receive() {
		finished = stream.Msg().GetEvent().GetFinished()
	}
	if finished == nil {
		t.Fatalf("watch ended before the goal finished: %v", stream.Err())
	}
	if finished.GetStatus() != agentmeshv1.GoalStatus_GOAL_STATUS_SUCCEEDED {
		t.Fatalf("goal %s: %v", finished.GetStatus(), finished.GetError())
	}

	_, err = executor.SubmitGoal(ctx, connect.NewRequest(&agentmeshv1.SubmitGoalRequest{Kind: "Text.Upper"}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument {
		t.Fatalf("a bad kind: want INVALID_ARGUMENT, got %v", err)
	}
}

// bearer sends the API key on every call, unary and streaming.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
