// Package deploy holds the Kubernetes manifests of RFD Notify (kustomize:
// base/ and overlays/dev, overlays/prod), the Prometheus alert rules and the
// Grafana dashboard (monitoring/). Its tests render every overlay with the
// kustomize Go module and decode each object strictly into its API type.
package deploy
