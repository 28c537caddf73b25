package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/test/testbed"
)

// PodRunner plays the kubelet for the chart's one-shot pods (the helm test pod): the test bed
// has no kubelet, so it runs the pod's container as a process here, with the image's programs
// mapped to binaries built from the tree, the pod's ConfigMap volumes written to a folder and
// the release's Service names mapped to the agent processes' addresses, then records the pod's
// phase as the kubelet would.
type PodRunner struct {
	// Cluster is the environment whose agent the pod's Services lead to.
	Cluster *Cluster
	// Programs maps a path in the image (e.g. /usr/local/bin/agentctl) to a binary.
	Programs map[string]string
}

// RunPod waits for pod name in the agent namespace, runs it, sets its phase and returns the
// container's output.
func (r PodRunner) RunPod(ctx context.Context, name string) (string, error) {
	pods := r.Cluster.Env.Kube.CoreV1().Pods(AgentNamespace)
	var pod *corev1.Pod
	for {
		// A pod that already ran is an earlier one, which helm deletes before creating the next.
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.DeletionTimestamp == nil && (p.Status.Phase == "" || p.Status.Phase == corev1.PodPending) {
			pod = p
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s was not created: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	out, runErr := r.run(ctx, pod)
	phase, code := corev1.PodSucceeded, 0
	if runErr != nil {
		phase, code = corev1.PodFailed, 1
		if ee, ok := runErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: phase, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{{
		Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), StartedAt: now, FinishedAt: metav1.Now()}},
	}}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return out, fmt.Errorf("failed to record pod %s as %s: %w", name, phase, err)
	}
	return out, runErr
}

// run starts the pod's first container as a process.
func (r PodRunner) run(ctx context.Context, pod *corev1.Pod) (string, error) {
	c := pod.Spec.Containers[0]
	if len(c.Command) == 0 {
		return "", fmt.Errorf("pod %s: container %s has no command", pod.Name, c.Name)
	}
	bin, ok := r.Programs[c.Command[0]]
	if !ok {
		return "", fmt.Errorf("pod %s runs %s, which the harness does not map to a binary", pod.Name, c.Command[0])
	}
	mounts, err := r.mountConfigMaps(ctx, pod, c)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mounts.dir)
	args := append(append([]string{}, c.Command[1:]...), c.Args...)
	for i, a := range args {
		args[i] = r.mapServices(ctx, mounts.rewrite(a))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mounts maps the pod's ConfigMap mount paths to folders written here.
type mounts struct {
	dir   string
	paths map[string]string
}

func (m mounts) rewrite(arg string) string {
	for mountPath, local := range m.paths {
		arg = strings.ReplaceAll(arg, mountPath+"/", local+"/")
	}
	return arg
}

// mountConfigMaps writes each ConfigMap volume the container mounts into a folder.
func (r PodRunner) mountConfigMaps(ctx context.Context, pod *corev1.Pod, c corev1.Container) (mounts, error) {
	dir, err := os.MkdirTemp("", "ecklink-pod-")
	if err != nil {
		return mounts{}, fmt.Errorf("failed to create a folder for pod %s: %w", pod.Name, err)
	}
	m := mounts{dir: dir, paths: map[string]string{}}
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			cm, err := r.Cluster.Env.Kube.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return m, fmt.Errorf("pod %s: ConfigMap %s of volume %s: %w", pod.Name, v.ConfigMap.Name, v.Name, err)
			}
			local := filepath.Join(dir, v.Name)
			if err := os.MkdirAll(local, 0o700); err != nil {
				return m, err
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(local, k), []byte(data), 0o600); err != nil {
					return m, err
				}
			}
			m.paths[vm.MountPath] = local
		}
	}
	return m, nil
}

// mapServices replaces <service>.<namespace>.svc:<port> of the agent's Services with the agent
// process's address for the Service's target port, as cluster DNS and kube-proxy would.
func (r PodRunner) mapServices(ctx context.Context, arg string) string {
	svcs, err := r.Cluster.Env.Kube.CoreV1().Services(AgentNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return arg
	}
	agentPorts := map[string]string{"grpc": "9400", "metrics": "9401"} // the harness's listeners
	for _, s := range svcs.Items {
		for _, p := range s.Spec.Ports {
			from := s.Name + "." + s.Namespace + ".svc:" + strconv.Itoa(int(p.Port))
			port, ok := agentPorts[p.TargetPort.String()]
			if !ok {
				continue
			}
			arg = strings.ReplaceAll(arg, from, r.Cluster.AgentIP+":"+port)
		}
	}
	return arg
}

// BuildAgentctl builds agentctl from the tree into dir.
func BuildAgentctl(ctx context.Context, dir string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agentctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./agent/cmd/agentctl")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to build agentctl: %w\n%s", err, b)
	}
	return out, nil
}
