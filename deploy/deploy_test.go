package deploy_test

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rfd-notify/rfd/deploy/render"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// scaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject the
// manifests use. Decoding is strict, so any other field (a typo) fails.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name,omitempty"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// kedaTriggerKeys are the metadata keys KEDA's scalers accept, per type
// (keda.sh docs, scalers kafka and prometheus).
var kedaTriggerKeys = map[string][]string{
	"kafka": {"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
		"offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
		"limitToPartitionsWithLag", "version", "partitionLimitation", "sasl", "tls"},
	"prometheus": {"serverAddress", "query", "threshold", "activationThreshold", "namespace", "ignoreNullValues", "unsafeSsl"},
}

// topicPartitions are the partitions each inbound topic is created with in
// production (deploy/README.md); no consumer scales beyond them.
var topicPartitions = map[string]int32{
	config.ConsumerCheckupEvents:      12,
	config.ConsumerOrderHistoryEvents: 4,
	config.ConsumerSendNotification:   4,
	config.ConsumerUserCreated:        4,
	config.ConsumerInternalLogin:      4,
}

// shutdownTimeout is the RFD_SHUTDOWN_TIMEOUT the pods are given: their
// grace period must be longer.
func shutdownTimeout(t *testing.T, r rendered) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(r.configMaps["rfd-config"].Data["RFD_SHUTDOWN_TIMEOUT"])
	if err != nil || d <= 0 {
		t.Fatalf("ConfigMap rfd-config: RFD_SHUTDOWN_TIMEOUT: %v", err)
	}
	return d
}

type rendered struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	pdbs        map[string]*policyv1.PodDisruptionBudget
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	scaled      map[string]*scaledObject
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	accounts    map[string]*corev1.ServiceAccount
	podMonitors map[string]*monitoringv1.PodMonitor
	rules       map[string]*monitoringv1.PrometheusRule
	counts      map[string]int
}

// decode renders dir and decodes every object strictly into its type.
func decode(t *testing.T, dir string) rendered {
	t.Helper()
	objs, err := render.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		scaled: map[string]*scaledObject{}, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, accounts: map[string]*corev1.ServiceAccount{},
		podMonitors: map[string]*monitoringv1.PodMonitor{}, rules: map[string]*monitoringv1.PrometheusRule{},
		counts: map[string]int{},
	}
	for _, o := range objs {
		var target any
		switch o.APIVersion + " " + o.Kind {
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			r.deployments[o.Name], target = v, v
		case "batch/v1 Job":
			v := &batchv1.Job{}
			r.jobs[o.Name], target = v, v
		case "policy/v1 PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			r.pdbs[o.Name], target = v, v
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			r.hpas[o.Name], target = v, v
		case "keda.sh/v1alpha1 ScaledObject":
			v := &scaledObject{}
			r.scaled[o.Name], target = v, v
		case "v1 ConfigMap":
			v := &corev1.ConfigMap{}
			r.configMaps[o.Name], target = v, v
		case "v1 Secret":
			v := &corev1.Secret{}
			r.secrets[o.Name], target = v, v
		case "v1 Service":
			v := &corev1.Service{}
			r.services[o.Name], target = v, v
		case "v1 ServiceAccount":
			v := &corev1.ServiceAccount{}
			r.accounts[o.Name], target = v, v
		case "monitoring.coreos.com/v1 PodMonitor":
			v := &monitoringv1.PodMonitor{}
			r.podMonitors[o.Name], target = v, v
		case "monitoring.coreos.com/v1 PrometheusRule":
			v := &monitoringv1.PrometheusRule{}
			r.rules[o.Name], target = v, v
		default:
			t.Errorf("%s: %s %s %s: no API type known to the test", dir, o.APIVersion, o.Kind, o.Name)
			continue
		}
		if err := yaml.UnmarshalStrict(o.YAML, target); err != nil {
			t.Errorf("%s: %s %s: strict decode: %v", dir, o.Kind, o.Name, err)
		}
		r.counts[o.Kind]++
	}
	return r
}

// roles are the eight deployments of DESIGN.md and their arguments.
var roles = map[string][]string{
	"rfd-api":    {"api"},
	"rfd-worker": {"worker"},
	"rfd-cron":   {"cron"},
}

func init() {
	for _, c := range config.Consumers {
		roles["rfd-consume-"+c] = []string{"consume", c}
	}
}

func TestOverlays(t *testing.T) {
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		t.Run(overlay, func(t *testing.T) {
			r := decode(t, overlay)
			checkRoles(t, r)
			checkAPI(t, r)
			checkScaling(t, r)
			checkMigrateJob(t, r)
			if pr := r.rules["rfd"]; len(r.rules) != 1 || pr == nil || !reflect.DeepEqual(pr.Spec, plainRules(t)) {
				t.Errorf("want one PrometheusRule rfd with the rules of %s", rulesFile)
			}
			kinds := make([]string, 0, len(r.counts))
			for k := range r.counts {
				kinds = append(kinds, fmt.Sprintf("%s=%d", k, r.counts[k]))
			}
			sort.Strings(kinds)
			t.Logf("%s renders %s", overlay, strings.Join(kinds, " "))
		})
	}
}

// checkPod holds every workload to the same pod rules.
func checkPod(t *testing.T, r rendered, what string, spec corev1.PodSpec) {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	if !strings.Contains(c.Image, "rfd-notify/rfd:") {
		t.Errorf("%s: image %q is not the rfd image with a tag", what, c.Image)
	}
	if len(c.Command) != 0 {
		t.Errorf("%s: overrides the image's entrypoint with %v", what, c.Command)
	}
	// The ConfigMap as a whole; the Secret only key by key, each from
	// rfd-secrets (role_secrets_test.go checks which keys).
	var cm bool
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			_, cm = r.configMaps[ef.ConfigMapRef.Name]
		}
	}
	if !cm {
		t.Errorf("%s: envFrom must name the rendered ConfigMap", what)
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		sec := strings.HasPrefix(e.ValueFrom.SecretKeyRef.Name, "rfd-secrets")
		if len(r.secrets) > 0 {
			_, sec = r.secrets[e.ValueFrom.SecretKeyRef.Name]
		}
		if !sec {
			t.Errorf("%s: %s comes from Secret %s, not rfd-secrets", what, e.Name, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	if len(r.configMaps) != 1 || len(r.secrets) > 1 {
		t.Errorf("%s: want one ConfigMap and at most one Secret, got %d and %d", what, len(r.configMaps), len(r.secrets))
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod must run as a non-root user", what)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container must have a read-only root filesystem, no privilege escalation and no capabilities", what)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s and limit %s: both must be set, request <= limit", what, res, req.String(), lim.String())
		}
	}
	grace := spec.TerminationGracePeriodSeconds
	limit := shutdownTimeout(t, r)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		limit += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if grace == nil || time.Duration(*grace)*time.Second <= limit {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed the preStop pause + RFD_SHUTDOWN_TIMEOUT (%s)", what, limit)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not need", what)
	}
}

func checkRoles(t *testing.T, r rendered) {
	if len(r.deployments) != len(roles) {
		t.Errorf("%d deployments, want the %d roles", len(r.deployments), len(roles))
	}
	if cm := r.configMaps["rfd-config"]; cm == nil || cm.Data["RFD_TRANSPORT"] != config.TransportKafka {
		t.Errorf("ConfigMap rfd-config must select the kafka transport")
	}
	for name, args := range roles {
		d, ok := r.deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		spec := d.Spec.Template.Spec
		checkPod(t, r, name, spec)
		c := spec.Containers[0]
		if !slices.Equal(c.Args, args) {
			t.Errorf("%s: args %v, want %v", name, c.Args, args)
		}
		port := "admin"
		if name == "rfd-api" {
			port = "http"
		}
		for probe, want := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			if want == nil || want.HTTPGet == nil || want.HTTPGet.Path != probe || want.HTTPGet.Port.String() != port {
				t.Errorf("%s: probe on %s must be an HTTP GET on port %s", name, probe, port)
			}
		}
		var declared, admin bool
		for _, p := range c.Ports {
			declared = declared || p.Name == port
			admin = admin || p.Name == "admin"
		}
		if !declared {
			t.Errorf("%s: port %s not declared", name, port)
		}
		// Every role, the API included, serves /metrics on admin only.
		if !admin {
			t.Errorf("%s: admin port (/metrics) not declared", name)
		}
		if !selects(d.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("%s: selector does not match its pod template", name)
		}
		pdb, ok := r.pdbs[name]
		if !ok {
			t.Errorf("%s: no PodDisruptionBudget", name)
		} else if !selects(pdb.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("%s: PodDisruptionBudget selects other pods", name)
		}
		for other, od := range r.deployments {
			if other != name && selects(d.Spec.Selector, od.Spec.Template.Labels) {
				t.Errorf("%s's selector also selects %s's pods", name, other)
			}
		}
	}
	if d := r.deployments["rfd-cron"]; d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != 2) {
		t.Errorf("rfd-cron: want 2 replicas")
	}
	for _, pm := range r.podMonitors {
		if !selects(&pm.Spec.Selector, r.deployments["rfd-api"].Spec.Template.Labels) ||
			!selects(&pm.Spec.Selector, r.deployments["rfd-worker"].Spec.Template.Labels) {
			t.Errorf("PodMonitor %s does not select every role", pm.Name)
		}
	}
	for _, pm := range r.podMonitors {
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || *ep.Port != "admin" {
				t.Errorf("PodMonitor %s scrapes a port other than admin: the API's public port does not serve /metrics", pm.Name)
			}
		}
	}
	if len(r.podMonitors) != 1 {
		t.Errorf("want one PodMonitor, got %d", len(r.podMonitors))
	}
}

func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	if sel == nil || len(sel.MatchLabels) == 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkAPI(t *testing.T, r rendered) {
	d := r.deployments["rfd-api"]
	if d == nil {
		return
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("rfd-api: want at least 2 replicas")
	}
	pdb := r.pdbs["rfd-api"]
	if pdb != nil && (pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1) {
		t.Errorf("rfd-api: PodDisruptionBudget must keep one replica available")
	}
	h := r.hpas["rfd-api"]
	if h == nil {
		t.Fatal("rfd-api: no HorizontalPodAutoscaler")
	}
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "rfd-api" {
		t.Errorf("rfd-api HPA targets %+v", h.Spec.ScaleTargetRef)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas <= *h.Spec.MinReplicas {
		t.Errorf("rfd-api HPA: want min >= 2 and max above it")
	}
	cpu := false
	for _, m := range h.Spec.Metrics {
		cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU)
	}
	if !cpu {
		t.Errorf("rfd-api HPA does not scale on CPU")
	}
	if len(r.hpas) != 1 {
		t.Errorf("only the API has an HPA (KEDA owns the others' HPAs), got %d", len(r.hpas))
	}
	svc := r.services["rfd-api"]
	if svc == nil || !selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
		t.Errorf("rfd-api: no Service selecting its pods")
	}
}

func checkScaling(t *testing.T, r rendered) {
	brokers := r.configMaps["rfd-config"].Data["RFD_KAFKA_BROKERS"]
	for _, c := range config.Consumers {
		name := "rfd-consume-" + c
		so := r.scaled[name]
		if so == nil {
			t.Errorf("%s: no ScaledObject", name)
			continue
		}
		wantMin, wantMax := int32(1), int32(4)
		if c == config.ConsumerCheckupEvents {
			wantMin, wantMax = 3, 10
		}
		if so.Spec.ScaleTargetRef.Name != name {
			t.Errorf("%s: ScaledObject targets %q", name, so.Spec.ScaleTargetRef.Name)
		}
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != wantMin ||
			so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount != wantMax {
			t.Errorf("%s: replicas %v..%v, want %d..%d", name, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount, wantMin, wantMax)
		} else if *so.Spec.MaxReplicaCount > topicPartitions[c] {
			t.Errorf("%s: %d replicas at most, beyond the %d partitions of %s", name, *so.Spec.MaxReplicaCount, topicPartitions[c], c)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
			t.Errorf("%s: want one kafka trigger", name)
			continue
		}
		md := so.Spec.Triggers[0].Metadata
		if md["topic"] != c || md["consumerGroup"] != "rfd."+c || md["bootstrapServers"] != brokers ||
			md["lagThreshold"] == "" || md["allowIdleConsumers"] != "false" {
			t.Errorf("%s: kafka trigger %v: want topic %s, group rfd.%s, brokers %s, a lag threshold, no idle consumers",
				name, md, c, c, brokers)
		}
		if d := r.deployments[name]; d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != wantMin) {
			t.Errorf("%s: Deployment replicas should start at KEDA's minimum %d", name, wantMin)
		}
	}
	w := r.scaled["rfd-worker"]
	if w == nil || w.Spec.ScaleTargetRef.Name != "rfd-worker" || w.Spec.MinReplicaCount == nil || *w.Spec.MinReplicaCount != 1 ||
		w.Spec.MaxReplicaCount == nil || *w.Spec.MaxReplicaCount != 4 {
		t.Errorf("rfd-worker: want a ScaledObject of 1..4 replicas")
	} else if len(w.Spec.Triggers) != 1 || !strings.Contains(w.Spec.Triggers[0].Metadata["query"], "rfd_outbox_backlog") {
		t.Errorf("rfd-worker: want one trigger on the outbox backlog")
	}
	for name, so := range r.scaled {
		if so.APIVersion != "keda.sh/v1alpha1" || so.Spec.PollingInterval == nil || so.Spec.CooldownPeriod == nil {
			t.Errorf("%s: ScaledObject without polling interval or cooldown", name)
		}
		for _, tr := range so.Spec.Triggers {
			known, ok := kedaTriggerKeys[tr.Type]
			if !ok {
				t.Errorf("%s: unknown trigger type %q", name, tr.Type)
			}
			for k := range tr.Metadata {
				if !slices.Contains(known, k) {
					t.Errorf("%s: %s trigger has unknown metadata key %q", name, tr.Type, k)
				}
			}
		}
		if _, ok := r.deployments[so.Spec.ScaleTargetRef.Name]; !ok {
			t.Errorf("%s: targets no rendered Deployment", name)
		}
	}
}

func checkMigrateJob(t *testing.T, r rendered) {
	j := r.jobs["rfd-migrate"]
	if j == nil {
		t.Fatal("no Job rfd-migrate")
	}
	checkPod(t, r, "rfd-migrate", j.Spec.Template.Spec)
	if args := j.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, []string{"migrate", "up"}) {
		t.Errorf("rfd-migrate: args %v", args)
	}
	if j.Spec.Template.Spec.RestartPolicy == corev1.RestartPolicyAlways {
		t.Errorf("rfd-migrate: a Job cannot restart Always")
	}
}

// TestStrictDecodeCatchesTypos makes sure the strict decoding above would
// fail on a misspelt field rather than ignore it.
func TestStrictDecodeCatchesTypos(t *testing.T) {
	bad := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n  templte: {}\n")
	if err := yaml.UnmarshalStrict(bad, &appsv1.Deployment{}); err == nil {
		t.Error("a misspelt Deployment field decoded without error")
	}
	badSO := []byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  maxReplicaCont: 3\n")
	if err := yaml.UnmarshalStrict(badSO, &scaledObject{}); err == nil {
		t.Error("a misspelt ScaledObject field decoded without error")
	}
}
