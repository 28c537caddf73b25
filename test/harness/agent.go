package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Agent is an ecklink agent running as a separate process, so a test can kill -9 it.
type Agent struct {
	Bin     string
	Args    []string
	Env     []string
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// Start starts the agent process, appending to its log.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return fmt.Errorf("agent already running")
	}
	log, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open agent log: %w", err)
	}
	a.runs++
	fmt.Fprintf(log, "--- harness: start #%d at %s\n", a.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(a.Bin, a.Args...)
	cmd.Env = append(os.Environ(), a.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("failed to start agent: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}()
	a.cmd, a.done = cmd, done
	return nil
}

// Running reports whether the process runs.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits (SIGKILL after 10s).
func (a *Agent) Stop() { a.signal(syscall.SIGTERM, 10*time.Second) }

// Kill sends SIGKILL, as a crash.
func (a *Agent) Kill() { a.signal(syscall.SIGKILL, 5*time.Second) }

func (a *Agent) signal(sig syscall.Signal, grace time.Duration) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart stops and starts the agent.
func (a *Agent) Restart() error {
	a.Stop()
	return a.Start()
}

// Pid is the process id, or 0.
func (a *Agent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Log returns the agent's log so far.
func (a *Agent) Log() string {
	data, _ := os.ReadFile(a.LogPath)
	return string(data)
}

// LogTail returns the last n lines of the log.
func (a *Agent) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(a.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogCount counts the log lines containing s.
func (a *Agent) LogCount(s string) int {
	return bytes.Count([]byte(a.Log()), []byte(s))
}

// Flag returns the value of the agent's flag --name (the last one given), or "".
func (a *Agent) Flag(name string) string {
	v := ""
	for i, arg := range a.Args {
		if arg == "--"+name && i+1 < len(a.Args) {
			v = a.Args[i+1]
		} else if after, ok := strings.CutPrefix(arg, "--"+name+"="); ok {
			v = after
		}
	}
	return v
}

// SetFlag sets the value of the agent's flag --name for its next start: every occurrence is
// replaced (one --name value is left), or the flag is added.
func (a *Agent) SetFlag(name, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for i := 0; i < len(a.Args); i++ {
		arg := a.Args[i]
		switch {
		case arg == "--"+name && i+1 < len(a.Args):
			i++
		case strings.HasPrefix(arg, "--"+name+"="):
		default:
			out = append(out, arg)
		}
	}
	a.Args = append(out, "--"+name, value)
}
