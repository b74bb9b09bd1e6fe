package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

func loadCompose(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithName("rfd"), cli.WithWorkingDirectory(filepath.Dir(file)))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// TestCompose loads compose.yaml with the compose-spec library (schema
// validation included) and checks it runs the eight roles of the
// Kubernetes manifests from one image after the migrate service.
func TestCompose(t *testing.T) {
	p, err := loadCompose(t, filepath.Join("..", "compose.yaml"))
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, infra := range []string{"postgres", "redpanda", "migrate"} {
		if _, ok := p.Services[infra]; !ok {
			t.Errorf("compose.yaml: no %s service", infra)
		}
	}
	if m := p.Services["migrate"]; !slices.Equal([]string(m.Command), []string{"migrate", "up"}) {
		t.Errorf("migrate: command %v", m.Command)
	}
	image := p.Services["migrate"].Image
	for name, args := range roles {
		svc, ok := p.Services[strings.TrimPrefix(name, "rfd-")]
		if !ok {
			t.Errorf("compose.yaml: no service for the role %s", name)
			continue
		}
		if !slices.Equal([]string(svc.Command), args) {
			t.Errorf("%s: command %v, want %v", svc.Name, svc.Command, args)
		}
		if svc.Image != image || svc.Build == nil {
			t.Errorf("%s: want the image %s built from the Dockerfile", svc.Name, image)
		}
		if dep, ok := svc.DependsOn["migrate"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s: must wait for migrate to complete", svc.Name)
		}
		if svc.Environment["RFD_TRANSPORT"] == nil || *svc.Environment["RFD_TRANSPORT"] != "kafka" {
			t.Errorf("%s: want the kafka transport", svc.Name)
		}
	}
	if len(p.Services) != len(roles)+3 {
		t.Errorf("compose.yaml: %d services, want the %d roles + postgres, redpanda, migrate", len(p.Services), len(roles))
	}
}

// TestComposeValidationCatchesTypos makes sure the loader rejects a
// misspelt key instead of ignoring it.
func TestComposeValidationCatchesTypos(t *testing.T) {
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte("services:\n  api:\n    image: x\n    comand: [api]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, file); err == nil {
		t.Error("a misspelt compose key loaded without error")
	}
}

// TestDockerfile checks what the image build would do without building
// it: a multi-stage build of the static binary the tests run (rfdbin
// builds with the same line), every COPY source present, a distroless or
// scratch runtime as a non-root user running rfd.
func TestDockerfile(t *testing.T) {
	root, err := rfdbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := rfdbin.ParseDockerfile(df)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bc.Env, "CGO_ENABLED=0") || bc.Args[len(bc.Args)-1] != "." {
		t.Errorf("Dockerfile: want a static (CGO_ENABLED=0) build of the main package ., got %+v", bc)
	}
	var stages, runtimeBase, user, entrypoint string
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			stages += "x"
			runtimeBase = f[1]
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		case "COPY":
			if strings.HasPrefix(f[1], "--from=") {
				continue
			}
			for _, src := range f[1 : len(f)-1] {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("Dockerfile copies %s: %v", src, err)
				}
			}
		}
	}
	if len(stages) < 2 {
		t.Errorf("Dockerfile: want a multi-stage build")
	}
	if !strings.HasPrefix(runtimeBase, "gcr.io/distroless/static") && runtimeBase != "scratch" {
		t.Errorf("Dockerfile: runtime base %s is neither distroless static nor scratch", runtimeBase)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("Dockerfile: runs as %q, want a non-root user", user)
	}
	if !strings.Contains(entrypoint, "/usr/local/bin/rfd") {
		t.Errorf("Dockerfile: entrypoint %s is not rfd", entrypoint)
	}
}
