package deploy

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes a manifest into T as the API server does with
// strict field validation (kubectl apply --validate=strict): YAML to JSON
// refusing duplicate keys, then a case-sensitive decoding that refuses
// unknown and duplicate fields. (sigs.k8s.io/yaml's own UnmarshalStrict
// matches field names case-insensitively and would accept completionmode.)
func decodeStrict[T any](t *testing.T, path string) *T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := new(T)
	if err := unmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func unmarshalStrict(data []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// containerUser is the USER of ../Containerfile ("65532:65532").
func containerUser(t *testing.T) (uid, gid int64) {
	t.Helper()
	data, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("Containerfile: no numeric USER uid:gid")
	}
	uid, _ = strconv.ParseInt(m[1], 10, 64)
	gid, _ = strconv.ParseInt(m[2], 10, 64)
	return uid, gid
}

var shardArg = regexp.MustCompile(`^\$\(JOB_COMPLETION_INDEX\)/(\d+)$`)

// checkShardJob checks the Job spec shared by job.yaml and cronjob.yaml.
func checkShardJob(t *testing.T, name string, spec *batchv1.JobSpec) {
	t.Helper()
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("%s: completionMode %v, want Indexed", name, spec.CompletionMode)
	}
	pod := spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(pod.Containers))
	}
	c := pod.Containers[0]

	// completions == parallelism == the COUNT of --shard INDEX/COUNT.
	count := 0
	for i, a := range c.Args {
		if a == "--shard" && i+1 < len(c.Args) {
			m := shardArg.FindStringSubmatch(c.Args[i+1])
			if m == nil {
				t.Fatalf("%s: --shard %q, want $(JOB_COMPLETION_INDEX)/COUNT", name, c.Args[i+1])
			}
			count, _ = strconv.Atoi(m[1])
		}
	}
	if count < 1 {
		t.Fatalf("%s: args %q have no --shard $(JOB_COMPLETION_INDEX)/COUNT", name, c.Args)
	}
	if spec.Completions == nil || int(*spec.Completions) != count || spec.Parallelism == nil || int(*spec.Parallelism) != count {
		t.Errorf("%s: completions %s, parallelism %s, --shard …/%d: all three must be COUNT", name, show(spec.Completions), show(spec.Parallelism), count)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("%s: args %q: want qpipe's run command (the image's entrypoint is qpipe)", name, c.Args)
	}
	if len(c.Command) != 0 {
		t.Errorf("%s: command %q overrides the image's qpipe entrypoint", name, c.Command)
	}
	// $(JOB_COMPLETION_INDEX) expands only from a variable of the container.
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "JOB_COMPLETION_INDEX" {
			env = &c.Env[i]
		}
	}
	if env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil ||
		env.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("%s: JOB_COMPLETION_INDEX is not taken from the completion-index annotation: %+v", name, env)
	}

	// The image: what `make image` tags (qpipe:VERSION), run as it is.
	if !strings.HasPrefix(c.Image, "qpipe:") && !strings.Contains(c.Image, "/qpipe:") {
		t.Errorf("%s: image %q is not a qpipe image", name, c.Image)
	}

	// Non-root, as the Containerfile's USER, and nothing more.
	uid, gid := containerUser(t)
	psc := pod.SecurityContext
	if psc == nil {
		t.Fatalf("%s: the pod has no securityContext", name)
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != uid || psc.RunAsGroup == nil || *psc.RunAsGroup != gid || psc.FSGroup == nil || *psc.FSGroup != gid {
		t.Errorf("%s: pod runs as %s:%s (fsGroup %s), the image's USER is %d:%d", name, show(psc.RunAsUser), show(psc.RunAsGroup), show(psc.FSGroup), uid, gid)
	}
	csc := c.SecurityContext
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.Capabilities == nil || !reflect.DeepEqual(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: container securityContext %+v: want no privilege escalation, a read-only root, all capabilities dropped", name, csc)
	}
	if r := pod.RestartPolicy; r != corev1.RestartPolicyNever && r != corev1.RestartPolicyOnFailure {
		t.Errorf("%s: restartPolicy %q", name, r)
	}

	// Mounts: the job folder given to qpipe lies on the work volume; /tmp
	// is writable for run --check.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("%s: mount %s names no volume", name, m.Name)
		}
		mounts[m.MountPath] = m
		if m.MountPath == "/work" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "qpipe-work") {
			t.Errorf("%s: /work is not the qpipe-work claim", name)
		}
		if m.MountPath == "/tmp" && v.EmptyDir == nil {
			t.Errorf("%s: /tmp is not an emptyDir", name)
		}
	}
	for _, p := range []string{"/work", "/tmp"} {
		if m, ok := mounts[p]; !ok || m.ReadOnly {
			t.Errorf("%s: no writable mount at %s", name, p)
		}
	}
	jobsArg := c.Args[len(c.Args)-1]
	if !strings.HasPrefix(jobsArg, "/work/") {
		t.Errorf("%s: job files %q are not on the /work volume", name, jobsArg)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory limit (qpipe --jobs reads it from the cgroup)", name)
	}
}

func TestIndexedJob(t *testing.T) {
	j := decodeStrict[batchv1.Job](t, "kubernetes/job.yaml")
	if j.APIVersion != "batch/v1" || j.Kind != "Job" {
		t.Fatalf("job.yaml: %s %s", j.APIVersion, j.Kind)
	}
	checkShardJob(t, "job.yaml", &j.Spec)
}

func TestCronJob(t *testing.T) {
	c := decodeStrict[batchv1.CronJob](t, "kubernetes/cronjob.yaml")
	if c.APIVersion != "batch/v1" || c.Kind != "CronJob" {
		t.Fatalf("cronjob.yaml: %s %s", c.APIVersion, c.Kind)
	}
	if c.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q: two nights at once would write the same outputs", c.Spec.ConcurrencyPolicy)
	}
	if f := strings.Fields(c.Spec.Schedule); len(f) != 5 {
		t.Errorf("schedule %q is not a 5-field cron line", c.Spec.Schedule)
	}
	checkShardJob(t, "cronjob.yaml", &c.Spec.JobTemplate.Spec)

	// The nightly pods are the Indexed Job's pods.
	j := decodeStrict[batchv1.Job](t, "kubernetes/job.yaml")
	a, b := j.Spec.Template.Spec, c.Spec.JobTemplate.Spec.Template.Spec
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the pod templates of job.yaml and cronjob.yaml differ:\n%+v\n%+v", a, b)
	}
}

func TestVolumeClaim(t *testing.T) {
	v := decodeStrict[corev1.PersistentVolumeClaim](t, "kubernetes/volume.yaml")
	if v.Kind != "PersistentVolumeClaim" || v.Name != "qpipe-work" {
		t.Fatalf("volume.yaml: %s %s", v.Kind, v.Name)
	}
	if !reflect.DeepEqual(v.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) {
		t.Errorf("access modes %v: parallel shards on several nodes need ReadWriteMany", v.Spec.AccessModes)
	}
}

// TestStrictDecodingRefuses: the check above can fail — a misspelt field
// or a wrong type is refused.
func TestStrictDecodingRefuses(t *testing.T) {
	data, err := os.ReadFile("kubernetes/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"completionMode: Indexed", "completionmode: Indexed", "unknown field"},
		{"parallelism: 4", "parallelism: four", "cannot unmarshal"},
		{"  completions: 4\n", "  completions: 4\n  completions: 5\n", "already set"},
	} {
		bad := strings.Replace(string(data), tc.from, tc.to, 1)
		if bad == string(data) {
			t.Fatalf("%q not in job.yaml", tc.from)
		}
		var j batchv1.Job
		if err := unmarshalStrict([]byte(bad), &j); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q -> %q: error %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

// show prints an optional field.
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
