package logging

import (
	"fmt"

	"github.com/go-logr/logr"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"
)

// Redirect sends klog (client-go) and gRPC logs to named subloggers of root. client-go's info
// lines are debug here; gRPC's chatter is trace.
func Redirect(root hclog.Logger) {
	klog.SetLogger(logr.New(&sink{log: root.Named("client-go")}))
	grpclog.SetLoggerV2(&grpcLogger{log: root.Named("grpc")})
}

// sink adapts hclog to logr for klog.
type sink struct {
	log  hclog.Logger
	name string
}

func (s *sink) Init(logr.RuntimeInfo) {}
func (s *sink) Enabled(int) bool      { return s.log.IsDebug() }
func (s *sink) Info(level int, msg string, kv ...any) {
	s.log.Debug(msg, kv...)
}
func (s *sink) Error(err error, msg string, kv ...any) {
	s.log.Warn(msg, append(kv, "error", err)...)
}
func (s *sink) WithValues(kv ...any) logr.LogSink { return &sink{log: s.log.With(kv...), name: s.name} }
func (s *sink) WithName(name string) logr.LogSink { return &sink{log: s.log.Named(name), name: name} }

// grpcLogger adapts hclog to grpclog.LoggerV2.
type grpcLogger struct{ log hclog.Logger }

func (g *grpcLogger) Info(args ...any)                 { g.log.Trace(fmt.Sprint(args...)) }
func (g *grpcLogger) Infoln(args ...any)               { g.log.Trace(fmt.Sprint(args...)) }
func (g *grpcLogger) Infof(format string, args ...any) { g.log.Trace(fmt.Sprintf(format, args...)) }
func (g *grpcLogger) Warning(args ...any)              { g.log.Debug(fmt.Sprint(args...)) }
func (g *grpcLogger) Warningln(args ...any)            { g.log.Debug(fmt.Sprint(args...)) }
func (g *grpcLogger) Warningf(format string, args ...any) {
	g.log.Debug(fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Error(args ...any)                 { g.log.Warn(fmt.Sprint(args...)) }
func (g *grpcLogger) Errorln(args ...any)               { g.log.Warn(fmt.Sprint(args...)) }
func (g *grpcLogger) Errorf(format string, args ...any) { g.log.Warn(fmt.Sprintf(format, args...)) }
func (g *grpcLogger) Fatal(args ...any)                 { g.log.Error(fmt.Sprint(args...)); panic(fmt.Sprint(args...)) }
func (g *grpcLogger) Fatalln(args ...any)               { g.Fatal(args...) }
func (g *grpcLogger) Fatalf(format string, args ...any) { g.Fatal(fmt.Sprintf(format, args...)) }
func (g *grpcLogger) V(level int) bool                  { return level <= 0 || g.log.IsTrace() }
