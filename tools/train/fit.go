package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/qpipe/qpipe/internal/gen"
	"github.com/qpipe/qpipe/internal/tflite"
	"github.com/qpipe/qpipe/internal/trained"
)

// trainedConfig is the trained model's shape: vocab 4096 (the tokenizer),
// dim 256 and ffn 512 (multiples of 256, so every int4 block size applies
// to every weight), 2 blocks of 4 heads, 128 positions: 2,360,576
// parameters, 9.4 MB of float32 (the 10 MB bound).
var trainedConfig = gen.Config{Name: "trained", Vocab: 4096, Dim: 256, Layers: 2, Heads: 4, FFN: 512, Seq: 128, Seed: 1, Activation: gen.ActSiLU}

// hyper are the training hyperparameters.
type hyper struct {
	Steps, Batch, Warmup int
	LR, MinLR, WD, Clip  float64
	Beta1, Beta2, Eps    float64
	Seed                 uint64
	LogEvery, EvalEvery  int
	EvalWindows          int
	// Stop, when positive, ends the run after that many steps with the
	// schedule of Steps (to check a prefix of a run against its checkpoint).
	Stop                 int `json:"-"`
	TrainIDs, HeldoutIDs string
	Out, LogPath         string `json:"-"`
}

// readIDs reads spm_encode --output_format=id output: space-separated ids,
// one line of text per line (ended by the </s> id with --extra_options=eos).
func readIDs(path string, vocab int) ([]int32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []int32
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	line := 0
	for sc.Scan() {
		line++
		for _, w := range strings.Fields(sc.Text()) {
			v, err := strconv.Atoi(w)
			if err != nil || v < 0 || v >= vocab {
				return nil, fmt.Errorf("%s:%d: %q is not a token id below %d", path, line, w, vocab)
			}
			ids = append(ids, int32(v))
		}
	}
	return ids, sc.Err()
}

type logEntry struct {
	Step        int     `json:"step"`
	Tokens      int     `json:"tokens"`
	TrainLoss   float64 `json:"train_loss"`
	HeldoutLoss float64 `json:"heldout_loss,omitempty"`
	LR          float64 `json:"lr"`
	Seconds     float64 `json:"seconds"`
}

type trainLog struct {
	Model        gen.Config `json:"model"`
	Params       int        `json:"params"`
	Hyper        hyper      `json:"hyper"`
	TrainTokens  int        `json:"train_tokens"`
	HeldTokens   int        `json:"heldout_tokens"`
	GOMAXPROCS   int        `json:"gomaxprocs"`
	GoVersion    string     `json:"go_version"`
	Seconds      float64    `json:"seconds"`
	TokensPerSec float64    `json:"tokens_per_second"`
	Curve        []logEntry `json:"curve"`
	Note         string     `json:"note,omitempty"`
}

// parseHyper reads the hyperparameter flags of a subcommand.
func parseHyper(name string, args []string) hyper {
	var h hyper
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	h.flags(fs)
	fs.Parse(args)
	return h
}

func (h *hyper) flags(fs *flag.FlagSet) {
	fs.IntVar(&h.Steps, "steps", 900, "optimizer steps (the run is defined by this, not by time)")
	fs.IntVar(&h.Batch, "batch", 8, "sequences per step")
	fs.IntVar(&h.Warmup, "warmup", 60, "linear warm-up steps")
	fs.Float64Var(&h.LR, "lr", 1.5e-3, "peak learning rate")
	fs.Float64Var(&h.MinLR, "min-lr", 1.5e-4, "learning rate at the end of the cosine decay")
	fs.Float64Var(&h.WD, "wd", 0.1, "AdamW weight decay (matrices only)")
	fs.Float64Var(&h.Clip, "clip", 1, "global gradient norm clip")
	fs.Float64Var(&h.Beta1, "beta1", 0.9, "AdamW β1")
	fs.Float64Var(&h.Beta2, "beta2", 0.95, "AdamW β2")
	fs.Float64Var(&h.Eps, "eps", 1e-8, "AdamW ε")
	fs.Uint64Var(&h.Seed, "seed", 1, "initialisation and data order seed")
	fs.IntVar(&h.Stop, "stop", 0, "end after this many steps, keeping the schedule of -steps (0: run all)")
	fs.IntVar(&h.LogEvery, "log-every", 50, "steps between curve points")
	fs.IntVar(&h.EvalEvery, "eval-every", 300, "steps between held-out evaluations")
	fs.IntVar(&h.EvalWindows, "eval-windows", 32, "held-out windows per evaluation")
	fs.StringVar(&h.TrainIDs, "train", ".cache/train/train.ids", "training token ids (spm_encode --output_format=id)")
	fs.StringVar(&h.HeldoutIDs, "heldout", ".cache/train/heldout.ids", "held-out token ids")
	fs.StringVar(&h.Out, "out", ".cache/train/trained_decoder.tflite", "the float .tflite to write")
	fs.StringVar(&h.LogPath, "log", ".cache/train/train_log.json", "the training log (JSON)")
}

func (h hyper) lr(step int) float64 {
	if step < h.Warmup {
		return h.LR * float64(step+1) / float64(h.Warmup)
	}
	p := float64(step-h.Warmup) / float64(max(1, h.Steps-h.Warmup))
	return h.MinLR + float64((h.LR-h.MinLR)*0.5*(1+math.Cos(math.Pi*p)))
}

// adamW keeps the moment estimates; update applies one step in float32
// (products rounded explicitly: no fused multiply-adds).
type adamW struct {
	m, v [][]float32
	t    int
}

func (o *adamW) update(md *model, h hyper, lr float64) {
	if o.m == nil {
		for _, p := range md.params {
			o.m = append(o.m, make([]float32, len(p)))
			o.v = append(o.v, make([]float32, len(p)))
		}
	}
	o.t++
	// global gradient norm, serially in parameter order
	var ss float64
	for _, g := range md.grads {
		for _, x := range g {
			ss += float64(float64(x) * float64(x))
		}
	}
	clip := float32(1)
	if n := math.Sqrt(ss); n > h.Clip {
		clip = float32(h.Clip / n)
	}
	b1, b2 := float32(h.Beta1), float32(h.Beta2)
	c1 := float32(1 / (1 - math.Pow(h.Beta1, float64(o.t))))
	c2 := float32(1 / (1 - math.Pow(h.Beta2, float64(o.t))))
	lr32, eps := float32(lr), float32(h.Eps)
	for i, p := range md.params {
		decay := float32(0)
		if md.specs[i].Rows > 0 {
			decay = float32(lr * h.WD)
		}
		g, m, v := md.grads[i], o.m[i], o.v[i]
		md.forEach(len(p)/4096+1, func(blk int) {
			for j := blk * 4096; j < min(len(p), blk*4096+4096); j++ {
				gj := float32(g[j] * clip)
				m[j] = float32(b1*m[j]) + float32((1-b1)*gj)
				v[j] = float32(b2*v[j]) + float32(float32((1-b2)*gj)*gj)
				mh, vh := float32(m[j]*c1), float32(v[j]*c2)
				step := float32(lr32*mh) / (float32(math.Sqrt(float64(vh))) + eps)
				p[j] = p[j] - float32(decay*p[j]) - step
			}
		})
	}
}

func cmdFit(args []string) error {
	h := parseHyper("fit", args)
	cfg := trainedConfig
	train, err := readIDs(h.TrainIDs, cfg.Vocab)
	if err != nil {
		return err
	}
	held, err := readIDs(h.HeldoutIDs, cfg.Vocab)
	if err != nil {
		return err
	}
	md, err := newModel(cfg, h.Seed)
	if err != nil {
		return err
	}
	lg, err := fit(md, h, train, held, os.Stdout)
	if err != nil {
		return err
	}
	if err := writeModel(md, h.Out); err != nil {
		return err
	}
	b, err := json.MarshalIndent(lg, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(h.LogPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", h.Out, h.LogPath)
	return nil
}

// writeModel writes md's weights as the gen decoder .tflite.
func writeModel(md *model, path string) error {
	m, err := gen.DecoderFrom(md.cfg, md.weights())
	if err != nil {
		return err
	}
	return tflite.WriteFile(context.Background(), path, m, tflite.WriteOptions{Layout: tflite.LayoutInline})
}

// fit trains md for h.Steps steps on windows of train in a seeded order
// (a new permutation each epoch) and returns the log.
func fit(md *model, h hyper, train, held []int32, progress *os.File) (*trainLog, error) {
	cfg := md.cfg
	wins := trained.Windows(train, cfg.Seq)
	hw := trained.Windows(held, cfg.Seq)
	if len(wins) < h.Batch {
		return nil, fmt.Errorf("train: %d training windows, fewer than a batch of %d", len(wins), h.Batch)
	}
	if len(hw) > h.EvalWindows {
		hw = hw[:h.EvalWindows]
	}
	lg := &trainLog{Model: cfg, Params: md.numParams(), Hyper: h, TrainTokens: len(train), HeldTokens: len(held),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	rng := rand.New(rand.NewPCG(h.Seed, 0x64617461))
	var order []int
	pos := 0
	var opt adamW
	start := time.Now()
	var sum float64
	var n int
	evalHeld := func() float64 {
		var tot float64
		for i := 0; i < len(hw); i += h.Batch {
			tot += float64(md.loss(hw[i:min(i+h.Batch, len(hw))]) * float64(min(h.Batch, len(hw)-i)))
		}
		return tot / float64(len(hw))
	}
	steps := h.Steps
	if h.Stop > 0 && h.Stop < steps {
		steps = h.Stop
	}
	for step := 0; step < steps; step++ {
		batch := make([][]int32, h.Batch)
		for i := range batch {
			if pos == len(order) {
				order = rng.Perm(len(wins))
				pos = 0
			}
			batch[i] = wins[order[pos]]
			pos++
		}
		loss := md.loss(batch)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("train: step %d: loss %v", step, loss)
		}
		md.backward(batch)
		lr := h.lr(step)
		opt.update(md, h, lr)
		sum += loss
		n++
		last := step+1 == steps
		if (step+1)%h.LogEvery == 0 || last {
			e := logEntry{Step: step + 1, Tokens: (step + 1) * h.Batch * cfg.Seq, TrainLoss: sum / float64(n), LR: lr, Seconds: time.Since(start).Seconds()}
			if (step+1)%h.EvalEvery == 0 || last {
				e.HeldoutLoss = evalHeld()
				// a usable model at every evaluation, in case the run is cut short
				if h.Out != "" && !last {
					if err := writeModel(md, h.Out); err != nil {
						return nil, err
					}
				}
			}
			lg.Curve = append(lg.Curve, e)
			if progress != nil {
				fmt.Fprintf(progress, "step %d tokens %d loss %.4f heldout %.4f lr %.2e %.0fs %.0f tok/s\n", e.Step, e.Tokens, e.TrainLoss, e.HeldoutLoss, lr, e.Seconds, float64(e.Tokens)/e.Seconds)
			}
			sum, n = 0, 0
		}
	}
	lg.Seconds = time.Since(start).Seconds()
	lg.TokensPerSec = float64(steps*h.Batch*cfg.Seq) / lg.Seconds
	return lg, nil
}

func cmdBench(args []string) error {
	h := parseHyper("bench", args)
	cfg := trainedConfig
	md, err := newModel(cfg, h.Seed)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	batch := make([][]int32, h.Batch)
	for i := range batch {
		batch[i] = make([]int32, cfg.Seq+1)
		for j := range batch[i] {
			batch[i][j] = int32(r.IntN(cfg.Vocab))
		}
	}
	var opt adamW
	md.loss(batch)
	md.backward(batch)
	t0 := time.Now()
	steps := h.Steps
	for s := 0; s < steps; s++ {
		md.loss(batch)
		md.backward(batch)
		opt.update(md, h, 1e-3)
	}
	sec := time.Since(t0).Seconds()
	tok := float64(steps * h.Batch * cfg.Seq)
	fmt.Printf("%d params, batch %d × %d: %.2f s/step, %.0f tokens/s (GOMAXPROCS %d)\n", md.numParams(), h.Batch, cfg.Seq, sec/float64(steps), tok/sec, runtime.GOMAXPROCS(0))
	return nil
}
