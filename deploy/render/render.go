// Package render builds the kustomizations of deploy/ with the kustomize
// Go module (sigs.k8s.io/kustomize/api/krusty), for the tests and for
// `go run ./deploy/kustomize build DIR`.
package render

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Object is one rendered manifest.
type Object struct {
	APIVersion string
	Kind       string
	Name       string
	YAML       []byte
}

// Build renders the kustomization in dir into its objects.
func Build(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []Object
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, Object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(), Name: r.GetName(), YAML: y})
	}
	return objs, nil
}

// YAML renders the kustomization in dir as one multi-document stream.
func YAML(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return out, nil
}
