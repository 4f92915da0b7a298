// dockerfile-lint: the checks of `docker build --check` (BuildKit's Dockerfile
// linter, run offline without a daemon) on the Dockerfiles named on the
// command line. Exit 1 when any rule fires or a file does not parse.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	digest "github.com/opencontainers/go-digest"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
)

// offline answers every base image with an empty configuration: the rules are
// checked without pulling anything (no registry is reachable in CI).
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, "", []byte(`{"config":{}}`), nil
}

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		dt, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		src := llb.NewSourceMap(nil, path, "Dockerfile", dt)
		src.Definition = &llb.Definition{}
		res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{SourceMap: src, MetaResolver: offline{}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		for _, w := range res.Warnings {
			line := 0
			if len(w.Location.Ranges) > 0 {
				line = int(w.Location.Ranges[0].Start.Line)
			}
			fmt.Printf("%s:%d: %s: %s\n", path, line, w.RuleName, w.Detail)
			failed = true
		}
		if res.Error != nil {
			fmt.Printf("%s: %s\n", path, res.Error.Message)
			failed = true
		}
		if !failed {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}
