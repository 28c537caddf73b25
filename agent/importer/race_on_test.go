//go:build race

package importer

// raceEnabled: the tests run under the race detector.
const raceEnabled = true
