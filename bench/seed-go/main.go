// The seed project's V6 design written idiomatically in Go, as a same-run peer for
// `halka bench --embedded`: a consistent-hash ring with virtual nodes behind an RWMutex,
// nodes holding a map behind their own RWMutex, and Put/Get that fire one goroutine per
// replica into a channel of capacity N and return at the W-th / R-th answer.
//
// Run: go run . -clients 1,2,8   (flags mirror halka bench's; prints the same table)
package main

import (
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type Node struct {
	Name string
	mu   sync.RWMutex
	data map[string]string
}

func (n *Node) Put(key, value string) {
	n.mu.Lock()
	n.data[key] = value
	n.mu.Unlock()
}

func (n *Node) Get(key string) (string, bool) {
	n.mu.RLock()
	v, ok := n.data[key]
	n.mu.RUnlock()
	return v, ok
}

type Ring struct {
	ReplicaCount int
	Vnodes       int
	mu           sync.RWMutex
	hashes       []uint32
	owners       map[uint32]*Node
	nodes        map[string]*Node
}

func NewRing(replicas, vnodes int) *Ring {
	return &Ring{ReplicaCount: replicas, Vnodes: vnodes, owners: map[uint32]*Node{}, nodes: map[string]*Node{}}
}

func (r *Ring) AddNode(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.nodes[name]; ok {
		return fmt.Errorf("node %q already exists", name)
	}
	n := &Node{Name: name, data: map[string]string{}}
	r.nodes[name] = n
	for i := 0; i < r.Vnodes; i++ {
		h := crc32.ChecksumIEEE([]byte(name + "#" + strconv.Itoa(i)))
		r.owners[h] = n
		r.hashes = append(r.hashes, h)
	}
	sort.Slice(r.hashes, func(i, j int) bool { return r.hashes[i] < r.hashes[j] })
	return nil
}

// replicas walks clockwise from the key's hash and collects N distinct nodes.
func (r *Ring) replicas(key string) []*Node {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h := crc32.ChecksumIEEE([]byte(key))
	i := sort.Search(len(r.hashes), func(i int) bool { return r.hashes[i] >= h })
	out := make([]*Node, 0, r.ReplicaCount)
	for k := 0; k < len(r.hashes) && len(out) < r.ReplicaCount; k++ {
		n := r.owners[r.hashes[(i+k)%len(r.hashes)]]
		dup := false
		for _, o := range out {
			if o == n {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

func (r *Ring) Put(key, value string, w int) error {
	if w < 1 || w > r.ReplicaCount {
		return fmt.Errorf("w=%d outside 1..%d", w, r.ReplicaCount)
	}
	nodes := r.replicas(key)
	acks := make(chan struct{}, len(nodes))
	for _, n := range nodes {
		go func(n *Node) {
			n.Put(key, value)
			acks <- struct{}{}
		}(n)
	}
	for i := 0; i < w; i++ {
		<-acks
	}
	return nil
}

type answer struct {
	node  string
	value string
	ok    bool
}

func (r *Ring) Get(key string, rq int) (map[string]string, error) {
	if rq < 1 || rq > r.ReplicaCount {
		return nil, fmt.Errorf("r=%d outside 1..%d", rq, r.ReplicaCount)
	}
	nodes := r.replicas(key)
	answers := make(chan answer, len(nodes))
	for _, n := range nodes {
		go func(n *Node) {
			v, ok := n.Get(key)
			answers <- answer{n.Name, v, ok}
		}(n)
	}
	out := make(map[string]string, rq)
	for i := 0; i < rq; i++ {
		a := <-answers
		if a.ok {
			out[a.node] = a.value
		}
	}
	if len(out) == 0 {
		return nil, errors.New("not found")
	}
	return out, nil
}

// key makes key i of the keyspace: 16 bytes, per operation as a client would, without
// fmt's machinery (halka bench does the same).
func key(i int) string {
	k := [16]byte{'k', 'e', 'y', '-'}
	for d := 15; d >= 4; d-- {
		k[d] = byte('0' + i%10)
		i /= 10
	}
	return string(k[:])
}

func main() {
	nodes := flag.Int("nodes", 6, "nodes")
	replication := flag.Int("replication", 5, "replication factor N")
	w := flag.Int("w", 3, "write quorum")
	r := flag.Int("r", 3, "read quorum")
	vnodes := flag.Int("vnodes", 100, "virtual nodes per node")
	keyspace := flag.Int("keyspace", 100000, "keys written before the measured run")
	ops := flag.Int("ops", 1000000, "operations per run (50% put, 50% get)")
	valueSize := flag.Int("value-size", 100, "value size in bytes")
	clientList := flag.String("clients", "1,2,8", "client goroutines, one run per value")
	flag.Parse()

	ring := NewRing(*replication, *vnodes)
	for i := 1; i <= *nodes; i++ {
		if err := ring.AddNode(fmt.Sprintf("node-%d", i)); err != nil {
			panic(err)
		}
	}
	value := strings.Repeat("x", *valueSize)
	for i := 0; i < *keyspace; i++ {
		if err := ring.Put(key(i), value, *w); err != nil {
			panic(err)
		}
	}
	fmt.Printf("%7s %12s %9s %9s %9s %7s\n", "clients", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "errors")
	for _, field := range strings.Split(*clientList, ",") {
		clients, err := strconv.Atoi(field)
		if err != nil || clients < 1 {
			panic("bad -clients value " + field)
		}
		perClient := *ops / clients
		lat := make([][]time.Duration, clients)
		errs := make([]int, clients)
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(c)))
				mine := make([]time.Duration, 0, perClient)
				for i := 0; i < perClient; i++ {
					k := key(rng.Intn(*keyspace))
					t := time.Now()
					var err error
					if rng.Intn(2) == 0 {
						err = ring.Put(k, value, *w)
					} else {
						_, err = ring.Get(k, *r)
					}
					mine = append(mine, time.Since(t))
					if err != nil {
						errs[c]++
					}
				}
				lat[c] = mine
			}(c)
		}
		wg.Wait()
		elapsed := time.Since(start)
		var all []time.Duration
		total := 0
		for c := range lat {
			all = append(all, lat[c]...)
			total += errs[c]
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1000 }
		fmt.Printf("%7d %12.0f %9.2f %9.2f %9.2f %7d\n", clients,
			float64(perClient*clients)/elapsed.Seconds(), q(0.50), q(0.99), q(0.999), total)
	}
}
