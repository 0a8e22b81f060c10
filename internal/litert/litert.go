// Package litert runs .tflite models on the real LiteRT runtime, as an
// oracle for tests: if LiteRT loads a model qpipe wrote and computes what the
// float model computes, the model is right for the runtime that phones and
// browsers use.
//
// The runtime is LiteRT.js (@litertjs/core, pinned in runner/package.json:
// TFLite with XNNPACK compiled to wasm) driven by runner/runner.mjs, one
// long-lived Node.js process that answers JSON lines. Start launches it;
// tests use Require. The Node dependencies are installed with
//
//	(cd internal/litert/runner && npm ci)
//
// Inputs and outputs are raw little-endian tensors. LiteRT.js accepts only
// float32, int32 and uint8 model inputs and outputs, runs dynamic (-1)
// dimensions at the stored static size, and runs one thread.
package litert

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is wrapped by Start's error when the runtime cannot be
// started on this machine at all: no Node.js, a Node.js older than 20, or
// the npm packages not installed.
var ErrUnavailable = errors.New("litert: runtime unavailable")

// minNodeMajor is the oldest Node.js the runner is known to work with.
const minNodeMajor = 20

// TensorInfo describes one input or output of a signature as the runtime
// sees it.
type TensorInfo struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	DType string `json:"dtype"` // "float32", "int32" or "uint8"
	Shape []int  `json:"shape"`
}

// Signature is one entry point of a model.
type Signature struct {
	Key     string       `json:"key"`
	Inputs  []TensorInfo `json:"inputs"`
	Outputs []TensorInfo `json:"outputs"`
}

// ModelInfo is what the runtime reports about a model. Inputs and Outputs
// are those of the default signature, the one Run uses.
type ModelInfo struct {
	Signatures []Signature  `json:"signatures"`
	Inputs     []TensorInfo `json:"inputs"`
	Outputs    []TensorInfo `json:"outputs"`
}

// Tensor is an input or output value: raw little-endian element data.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// NewFloat32 returns a float32 tensor holding v.
func NewFloat32(name string, shape []int, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: "float32", Shape: shape, Data: data}
}

// NewInt32 returns an int32 tensor holding v.
func NewInt32(name string, shape []int, v []int32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], uint32(x))
	}
	return Tensor{Name: name, DType: "int32", Shape: shape, Data: data}
}

// Float32s decodes a float32 tensor. It panics if t is not float32.
func (t Tensor) Float32s() []float32 {
	t.mustBe("float32", "Float32s")
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v
}

// Int32s decodes an int32 tensor. It panics if t is not int32.
func (t Tensor) Int32s() []int32 {
	t.mustBe("int32", "Int32s")
	v := make([]int32, len(t.Data)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v
}

func (t Tensor) mustBe(dtype, method string) {
	if t.DType != dtype || len(t.Data)%4 != 0 {
		panic(fmt.Sprintf("litert: %s called on tensor %q of type %s with %d bytes", method, t.Name, t.DType, len(t.Data)))
	}
}

// Runner is a running LiteRT oracle process. Its methods may be called from
// several goroutines; calls are served one at a time. If the process dies
// (a runtime trap ends it on purpose), the next call starts a new one.
type Runner struct {
	ctx  context.Context
	node string // path of the node executable
	dir  string // the runner directory (runner.mjs, node_modules)

	mu     sync.Mutex
	proc   *process
	seq    int
	closed bool
	last   runAnswer // the last successful run, for benchmarks

	// Version is the @litertjs/core version the runner loaded.
	Version string
}

// Start finds Node.js and the runner directory, starts the runner process
// and waits until it has loaded the runtime. ctx bounds the life of the
// process (and of any restarted one). The node executable is $QPIPE_NODE or
// node from PATH; the runner directory is $QPIPE_LITERT_DIR or runner/ next
// to this source file.
func Start(ctx context.Context) (*Runner, error) {
	node, err := findNode()
	if err != nil {
		return nil, err
	}
	dir, err := findRunnerDir()
	if err != nil {
		return nil, err
	}
	r := &Runner{ctx: ctx, node: node, dir: dir}
	version, err := r.restart()
	if err != nil {
		return nil, err
	}
	r.Version = version
	return r, nil
}

func findNode() (string, error) {
	if p := os.Getenv("QPIPE_NODE"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%w: node (Node.js %d or newer) not found in PATH; install it or set QPIPE_NODE", ErrUnavailable, minNodeMajor)
	}
	return p, nil
}

func findRunnerDir() (string, error) {
	dir := os.Getenv("QPIPE_LITERT_DIR")
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", fmt.Errorf("%w: cannot locate the runner directory; set QPIPE_LITERT_DIR", ErrUnavailable)
		}
		dir = filepath.Join(filepath.Dir(file), "runner")
	}
	if _, err := os.Stat(filepath.Join(dir, "runner.mjs")); err != nil {
		return "", fmt.Errorf("%w: no runner.mjs in %s (set QPIPE_LITERT_DIR to internal/litert/runner)", ErrUnavailable, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@litertjs", "core", "package.json")); err != nil {
		return "", fmt.Errorf("%w: @litertjs/core is not installed in %s: run `npm ci` in internal/litert/runner", ErrUnavailable, dir)
	}
	return dir, nil
}

// process is one node process and its pipes.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *tail
	exited chan struct{} // closed when Wait returned
}

type ready struct {
	Ready  bool   `json:"ready"`
	Error  string `json:"error"`
	LiteRT string `json:"litert"`
	Node   string `json:"node"`
}

// restart starts a new process and returns the runtime version it loaded;
// r.mu is held or r is not yet shared.
func (r *Runner) restart() (string, error) {
	cmd := exec.CommandContext(r.ctx, r.node, "runner.mjs")
	cmd.Dir = r.dir
	cmd.Env = os.Environ()
	stderr := &tail{max: 16 << 10}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("litert: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("litert: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%w: starting %s: %v", ErrUnavailable, r.node, err)
	}
	p := &process{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), stderr: stderr, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()

	line, err := p.stdout.ReadBytes('\n')
	var hello ready
	if err == nil {
		err = json.Unmarshal(line, &hello)
	}
	switch {
	case err != nil:
		p.kill()
		return "", fmt.Errorf("litert: runner did not start (%v); its stderr: %s", err, stderr.String())
	case !hello.Ready:
		p.kill()
		return "", fmt.Errorf("litert: runner could not load the runtime: %s", hello.Error)
	}
	if major := nodeMajor(hello.Node); major < minNodeMajor {
		p.kill()
		return "", fmt.Errorf("%w: %s is Node.js %s; LiteRT.js needs %d or newer", ErrUnavailable, r.node, hello.Node, minNodeMajor)
	}
	r.proc = p
	return hello.LiteRT, nil
}

func nodeMajor(v string) int {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

func (p *process) kill() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

type request struct {
	ID        int         `json:"id"`
	Op        string      `json:"op"`
	Model     string      `json:"model"`
	Signature string      `json:"signature,omitempty"`
	Inputs    []inputSpec `json:"inputs,omitempty"`
	OutDir    string      `json:"outDir,omitempty"`
}

// inputSpec names an input file, or asks the runner to generate the input
// from a seed (the values RandomInputs gives).
type inputSpec struct {
	File  string `json:"file,omitempty"`
	Seed  *int64 `json:"seed,omitempty"`
	Vocab int    `json:"vocab,omitempty"`
}

// status is the part every answer has.
type status struct {
	ID      int    `json:"id"`
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Trapped bool   `json:"trapped"`
}

type runAnswer struct {
	Outputs []struct {
		TensorInfo
		File string `json:"file"`
	} `json:"outputs"`
	LoadMs float64 `json:"loadMs"` // reading, loading and compiling the model
	RunMs  float64 `json:"runMs"`  // the invocation alone
}

// call sends one request and decodes its answer into answer. r.mu must be
// held.
func (r *Runner) call(req request, answer any) error {
	if r.closed {
		return errors.New("litert: runner is closed")
	}
	if r.proc == nil || !r.proc.alive() {
		if _, err := r.restart(); err != nil {
			return err
		}
	}
	r.seq++
	req.ID = r.seq
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("litert: %w", err)
	}
	p := r.proc
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		return r.died(req, err)
	}
	line, err = p.stdout.ReadBytes('\n')
	if err != nil {
		return r.died(req, err)
	}
	var st status
	if err := json.Unmarshal(line, &st); err != nil {
		return fmt.Errorf("litert: unreadable answer to %s %s: %v: %q", req.Op, req.Model, err, line)
	}
	if st.ID != req.ID {
		return fmt.Errorf("litert: answer %d to request %d (%s %s)", st.ID, req.ID, req.Op, req.Model)
	}
	if st.Trapped {
		<-p.exited // the runner exits after a trap; the next call starts a new one
		r.proc = nil
	}
	if !st.OK {
		return fmt.Errorf("litert: %s", st.Error)
	}
	if err := json.Unmarshal(line, answer); err != nil {
		return fmt.Errorf("litert: unreadable answer to %s %s: %v", req.Op, req.Model, err)
	}
	return nil
}

func (r *Runner) died(req request, err error) error {
	p := r.proc
	r.proc = nil
	_ = p.stdin.Close()
	<-p.exited
	return fmt.Errorf("litert: runner died during %s of %s (%v, %v); its stderr: %s", req.Op, req.Model, err, p.cmd.ProcessState, p.stderr.String())
}

// Info loads model and reports its signatures and their tensors.
func (r *Runner) Info(model string) (*ModelInfo, error) {
	abs, err := filepath.Abs(model)
	if err != nil {
		return nil, fmt.Errorf("litert: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var info ModelInfo
	if err := r.call(request{Op: "info", Model: abs}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Run loads model, runs its default signature on inputs (one per signature
// input, in order) and returns its outputs.
func (r *Runner) Run(model string, inputs []Tensor) ([]Tensor, error) {
	return r.RunSignature(model, "", inputs)
}

// RunSignature is Run through the signature named key ("" = default).
func (r *Runner) RunSignature(model, key string, inputs []Tensor) ([]Tensor, error) {
	abs, err := filepath.Abs(model)
	if err != nil {
		return nil, fmt.Errorf("litert: %w", err)
	}
	dir, err := os.MkdirTemp("", "qpipe-litert-")
	if err != nil {
		return nil, fmt.Errorf("litert: %w", err)
	}
	defer os.RemoveAll(dir)

	req := request{Op: "run", Model: abs, Signature: key, OutDir: dir}
	for i, t := range inputs {
		f := filepath.Join(dir, fmt.Sprintf("input%d.bin", i))
		if err := os.WriteFile(f, t.Data, 0o600); err != nil {
			return nil, fmt.Errorf("litert: %w", err)
		}
		req.Inputs = append(req.Inputs, inputSpec{File: f})
	}

	var answer runAnswer
	r.mu.Lock()
	err = r.call(req, &answer)
	if err == nil {
		r.last = answer
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]Tensor, len(answer.Outputs))
	for i, o := range answer.Outputs {
		data, err := os.ReadFile(o.File)
		if err != nil {
			return nil, fmt.Errorf("litert: output %d of %s: %w", i, model, err)
		}
		out[i] = Tensor{Name: o.Name, DType: o.DType, Shape: o.Shape, Data: data}
	}
	return out, nil
}

// Close ends the runner process.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.proc != nil {
		r.proc.kill()
		r.proc = nil
	}
	return nil
}

// tail keeps the last max bytes written to it (the runner's stderr, for
// error messages).
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(empty)"
	}
	return s
}
