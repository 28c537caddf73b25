package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// cpuProfiles takes a CPU profile of each environment's agent for d, starting now, into
// <dir>/<env>/<name>.pprof (read with `go tool pprof -top <file>`), and the allocations made in
// the same window into <dir>/<env>/<name>-allocs.pprof (`go tool pprof -sample_index=alloc_space
// -top <file>`); the channel closes when all are written. A failed profile is reported and does not fail the bench.
func (b *bed) cpuProfiles(ctx context.Context, name string, d time.Duration) chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for env, c := range b.w.Clusters {
		for _, kind := range []struct{ what, endpoint, suffix string }{
			{"CPU profile", "profile", ""},
			{"allocations (delta)", "allocs", "-allocs"},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				path := filepath.Join(b.dir, env, name+kind.suffix+".pprof")
				url := "http://" + c.Agent.Flag("metrics-address") + "/debug/pprof/" + kind.endpoint + "?seconds=" + fmt.Sprint(int(d.Seconds()))
				if err := fetchProfile(ctx, url, path, d); err != nil {
					fmt.Printf("bench: %s of %s's agent: %v\n", kind.what, env, err)
					return
				}
				fmt.Printf("bench: %s's agent %s: %s\n", env, kind.what, path)
			}()
		}
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func fetchProfile(ctx context.Context, url, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// heapProfiles writes, for each environment's agent, the runtime's memory statistics as they are
// (<dir>/<env>/<name>.txt: heap in use, idle, released, the next GC's goal, stacks: where an RSS
// beyond the live heap goes), then a heap profile taken after a garbage collection, so that its
// in-use figures are the live heap (<dir>/<env>/<name>.pprof;
// `go tool pprof -sample_index=inuse_space -top <file>`).
func (b *bed) heapProfiles(ctx context.Context, name string) {
	for env, c := range b.w.Clusters {
		base := "http://" + c.Agent.Flag("metrics-address") + "/debug/pprof/heap"
		stats := filepath.Join(b.dir, env, name+".txt")
		if err := fetchProfile(ctx, base+"?debug=1", stats, 0); err != nil {
			fmt.Printf("bench: memory statistics of %s's agent: %v\n", env, err)
		} else {
			fmt.Printf("bench: %s's agent memory statistics: %s\n", env, stats)
		}
		path := filepath.Join(b.dir, env, name+".pprof")
		if err := fetchProfile(ctx, base+"?gc=1", path, 0); err != nil {
			fmt.Printf("bench: heap profile of %s's agent: %v\n", env, err)
			continue
		}
		fmt.Printf("bench: %s's agent heap profile (live heap): %s\n", env, path)
	}
}
