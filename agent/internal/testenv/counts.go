package testenv

import (
	"maps"
	"strings"
	"sync"
)

// Counts counts events by key, for the goroutines under test and the test itself.
type Counts struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one k.
func (c *Counts) Add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
}

// Get is the count of k.
func (c *Counts) Get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// Total is the sum of the counts of the keys that start with prefix.
func (c *Counts) Total(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for k, v := range c.n {
		if strings.HasPrefix(k, prefix) {
			t += v
		}
	}
	return t
}

// Take returns the counts so far and starts again from zero.
func (c *Counts) Take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	return n
}

// Snapshot is a copy of the counts so far.
func (c *Counts) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}
