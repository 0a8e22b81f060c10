// Package deploy holds the tests of qpipe's deployment files: the
// Kubernetes manifests in kubernetes/ (decoded strictly into the real
// k8s.io/api types) and the container image built from ../Containerfile.
// It is a separate Go module so that the Kubernetes libraries stay out of
// qpipe's own dependencies; run its tests with (cd deploy && go test ./...).
package deploy
