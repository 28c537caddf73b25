//go:build !race

package exporter

// raceEnabled: the tests run under the race detector.
const raceEnabled = false
