package interp

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/tflite/fb"
)

// TestEvalScale is the scale measurement, run by hand (it needs
// two large models):
//
//	qpipe gen --preset 1gb /tmp/x.tflite
//	qpipe quantize --recipe dynamic_int4_block32 /tmp/x.tflite /tmp/x4.tflite
//	go test -c -o /tmp/interp.test ./internal/interp
//	QPIPE_EVAL_REF=/tmp/x.tflite QPIPE_EVAL_CAND=/tmp/x4.tflite \
//	  /usr/bin/time -v /tmp/interp.test -test.run TestEvalScale -test.v
//
// It runs both models on 8 sequences of uniform token ids (the signature's
// sequence length) as `qpipe eval` does, and reports the wall time per
// model, the rel L2 of the candidate's logits, and the peak anonymous
// memory (RssAnon sampled every 20 ms).
func TestEvalScale(t *testing.T) {
	ref, cand := os.Getenv("QPIPE_EVAL_REF"), os.Getenv("QPIPE_EVAL_CAND")
	if ref == "" || cand == "" {
		t.Skip("set QPIPE_EVAL_REF and QPIPE_EVAL_CAND to run the scale measurement")
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if v := rssAnonKB(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer close(stop)
	const samples = 8
	outs := map[string][][]float32{}
	for _, path := range []string{ref, cand} {
		m, err := tflite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		in, err := New(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		sig := in.Signatures()[0]
		vocab := 0
		for _, op := range m.Meta.Subgraphs[sig.Subgraph].Operators {
			if m.OpCode(op) == fb.BuiltinOperatorEMBEDDING_LOOKUP {
				vocab = int(m.Meta.Subgraphs[sig.Subgraph].Tensors[op.Inputs[1]].Shape[0])
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		for s := 0; s < samples; s++ {
			ids := NewTensor(fb.TensorTypeINT32, sig.Inputs[0].Shape)
			for i := range ids.I32 {
				ids.I32[i] = int32(r.IntN(vocab))
			}
			out, err := in.Run(context.Background(), sig.Key, map[string]*Tensor{sig.Inputs[0].Name: ids})
			if err != nil {
				t.Fatal(err)
			}
			outs[path] = append(outs[path], out[sig.Outputs[0].Name].F32)
		}
		wall := time.Since(start)
		t.Logf("%s: %d sequences of %v tokens in %v (%.2f s/sequence), threads %d", path, samples, sig.Inputs[0].Shape, wall, wall.Seconds()/samples, runtime.GOMAXPROCS(0))
		m.Close()
	}
	var worst float64
	for s := range outs[ref] {
		worst = max(worst, relL2(outs[ref][s], outs[cand][s]))
	}
	t.Logf("candidate logits rel L2 (worst sequence): %.4g", worst)
	t.Logf("peak anonymous memory: %.1f MiB", float64(peak.Load())/1024)
}

// rssAnonKB reads RssAnon from /proc/self/status (0 where unavailable).
func rssAnonKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
