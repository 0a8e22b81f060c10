package runner

import (
	"os"
	"path/filepath"
	"testing"
)

func TestShardPartition(t *testing.T) {
	wd, _ := os.Getwd()
	root := t.TempDir()
	var files []string
	for _, name := range []string{"a.yaml", "b.yaml", "sub/c.yaml", "sub/d.yaml", "e.yaml", "f.yaml", "g.yaml"} {
		p := filepath.Join(root, "jobs", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("not a job"), 0o644)
		files = append(files, p)
	}
	keys, err := shardKeys(files)
	if err != nil || keys[2] != "sub/c.yaml" || keys[0] != "a.yaml" {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, count := range []int{1, 2, 3, 5, 7, 9} {
		seen := map[string]int{}
		for i := range count {
			// The same files by another route: shuffled, relative, duplicated.
			var given []string
			for k := range files {
				p := files[(k*3+i)%len(files)]
				if k%3 == 0 {
					if r, err := filepath.Rel(wd, p); err == nil {
						p = r
					}
				}
				given = append(given, p)
			}
			given = append(given, files[0])
			mine, err := ShardJobs(given, i, count)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range mine {
				a, _ := filepath.Abs(p)
				seen[a]++
			}
		}
		if len(seen) != len(files) {
			t.Errorf("%d shards cover %d of %d files", count, len(seen), len(files))
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("%d shards: %s given to %d shards", count, p, n)
			}
		}
	}
	// Another mount point, same names: the same partition.
	other := t.TempDir()
	var moved []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		p := filepath.Join(other, "mnt", "x", rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("not a job"), 0o644)
		moved = append(moved, p)
	}
	for i := range 3 {
		a, _ := ShardJobs(files, i, 3)
		b, _ := ShardJobs(moved, i, 3)
		for k := range a {
			ra, _ := filepath.Rel(root, a[k])
			rb, _ := filepath.Rel(filepath.Join(other, "mnt", "x"), b[k])
			if ra != rb {
				t.Errorf("shard %d/3: %s here, %s on the other mount", i, ra, rb)
			}
		}
	}
}
