// Command submit sends a goal to an agentmesh gateway with the generated
// connect-go client and prints its events until it finishes.
//
//	AGENTMESH_URL=http://127.0.0.1:8080 AGENTMESH_API_KEY=am_... \
//	  go run ./example/submit -kind echo -input '{"message":"hi"}'
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	agentmeshv1 "agentmesh/sdk/go/gen/agentmesh/v1"
	"agentmesh/sdk/go/gen/agentmesh/v1/agentmeshv1connect"
)

func main() {
	kind := flag.String("kind", "echo", "goal kind")
	inputJSON := flag.String("input", `{"message":"hello from Go"}`, "goal input (a JSON object)")
	flag.Parse()

	baseURL, key := os.Getenv("AGENTMESH_URL"), os.Getenv("AGENTMESH_API_KEY")
	if baseURL == "" || key == "" {
		log.Fatal("set AGENTMESH_URL and AGENTMESH_API_KEY")
	}
	input := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(*inputJSON), input); err != nil {
		log.Fatalf("-input: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	executor := agentmeshv1connect.NewExecutorServiceClient(http.DefaultClient, baseURL)
	auth := func(h http.Header) { h.Set("Authorization", "Bearer "+key) }

	submit := connect.NewRequest(&agentmeshv1.SubmitGoalRequest{Kind: *kind, Input: input})
	auth(submit.Header())
	res, err := executor.SubmitGoal(ctx, submit)
	if err != nil {
		log.Fatal(err) // e.g. invalid_argument: ... kind: does not match regex pattern ...
	}
	goalID := res.Msg.GetGoal().GetGoalId()
	fmt.Println("goal", goalID)

	watch := connect.NewRequest(&agentmeshv1.WatchGoalRequest{GoalId: goalID})
	auth(watch.Header())
	stream, err := executor.WatchGoal(ctx, watch)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for stream.Receive() {
		event := stream.Msg().GetEvent()
		if f := event.GetFinished(); f != nil {
			out, _ := protojson.Marshal(f.GetOutput())
			fmt.Printf("%s %s %v\n", f.GetStatus(), out, f.GetError().GetMessage())
			return
		}
		fmt.Printf("%d %T\n", event.GetSequence(), event.GetKind())
	}
	log.Fatal(stream.Err())
}
