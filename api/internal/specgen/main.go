// Command specgen writes the checked-in OpenAPI description of the REST API:
// api/openapi.yaml (3.1) and api/openapi-3.0.yaml (the 3.0 downgrade). It
// runs from `go generate ./...` (see api/spec.go), in the api directory.
package main

import (
	"fmt"
	"os"

	"github.com/rfd-notify/rfd/api"
)

func main() {
	v31, v30, err := api.SpecYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, "specgen:", err)
		os.Exit(1)
	}
	for name, b := range map[string][]byte{api.SpecFile: v31, api.Spec30File: v30} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "specgen:", err)
			os.Exit(1)
		}
	}
}
