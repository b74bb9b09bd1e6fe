package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite base/prometheusrule.yaml from monitoring/rules.yaml")

const (
	rulesFile      = "monitoring/rules.yaml"
	rulesTestFile  = "monitoring/rules_test.yaml"
	prometheusRule = "base/prometheusrule.yaml"
)

// plainRules decodes the plain rules file strictly into the operator's
// rule types: a misspelt field fails here as well as in promtool.
func plainRules(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return spec
}

// TestRulesEqual keeps the PrometheusRule of the base and the plain rules
// file the same rules (-update writes the former from the latter).
func TestRulesEqual(t *testing.T) {
	spec := plainRules(t)
	if *update {
		pr := monitoringv1.PrometheusRule{
			TypeMeta:   metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"},
			ObjectMeta: metav1.ObjectMeta{Name: "rfd"},
			Spec:       spec,
		}
		b, err := yaml.Marshal(pr)
		if err != nil {
			t.Fatal(err)
		}
		header := []byte("# Generated from ../monitoring/rules.yaml by `go test ./deploy -run TestRulesEqual -update`: edit that file.\n")
		b = bytes.Replace(b, []byte("  creationTimestamp: null\n"), nil, 1)
		if err := os.WriteFile(prometheusRule, append(header, b...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRule, err)
	}
	if !reflect.DeepEqual(pr.Spec, spec) {
		t.Fatalf("%s differs from %s: run go test ./deploy -run TestRulesEqual -update", prometheusRule, rulesFile)
	}
	if len(spec.Groups) == 0 {
		t.Fatal("no rule groups")
	}
}

// TestRulesPromtool runs `promtool check rules` and the rule unit tests.
// CI installs promtool (Debian's prometheus package); a machine without it
// skips, saying so.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (apt-get install prometheus): alert rules not checked here; .ci/run installs it")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		} else {
			t.Logf("promtool %v:\n%s", args, out)
		}
	}
}

// TestRunbookCoversAlerts checks that every alert links to a section of
// docs/runbook.md that exists and names the alert.
func TestRunbookCoversAlerts(t *testing.T) {
	b, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	runbook := string(b)
	anchors := map[string]string{} // anchor -> section text
	sections := strings.Split(runbook, "\n## ")
	for _, s := range sections[1:] {
		title, _, _ := strings.Cut(s, "\n")
		anchors[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(title)), " ", "-")] = s
	}
	for _, want := range []string{"api-down", "consumer-not-processing", "checkup-event-delays", "delivery-failures",
		"order-sync-issues", "user-management-issues", "cron-failures"} {
		if _, ok := anchors[want]; !ok {
			t.Errorf("docs/runbook.md: no section #%s", want)
		}
	}
	for _, g := range plainRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			link := r.Annotations["runbook"]
			anchor, ok := strings.CutPrefix(link, "docs/runbook.md#")
			section, found := anchors[anchor]
			if !ok || !found {
				t.Errorf("%s: runbook link %q to no section", r.Alert, link)
				continue
			}
			if !strings.Contains(section, r.Alert) {
				t.Errorf("%s: section #%s does not mention it", r.Alert, anchor)
			}
		}
	}
}
