// Command kustomize renders a kustomization with the kustomize Go module
// pinned in go.mod, so no kustomize or kubectl binary is needed:
//
//	go run ./deploy/kustomize build deploy/overlays/prod
package main

import (
	"fmt"
	"os"

	"github.com/rfd-notify/rfd/deploy/render"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "build" {
		fmt.Fprintln(os.Stderr, "usage: kustomize build DIR")
		os.Exit(2)
	}
	out, err := render.YAML(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kustomize:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}
