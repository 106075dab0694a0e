package main

import "testing"

func TestParseBufferBench(t *testing.T) {
	out := `goos: linux
BenchmarkSPSC/ring-2   	 1000000	        10.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkSPSC/ring-2   	 1000000	        30.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkSPSC/ring-2   	 1000000	        20.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkSPSC/diode-2  	 1000000	       100.0 ns/op	         0 lost/op	      16 B/op	       1 allocs/op
PASS`
	rows := parseBufferBench(out)
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	if r := rows[0]; r.Bench != "SPSC" || r.Impl != "ring" || r.NsOp != 20 || r.MaxOverMed != 1.5 || r.Runs != 3 {
		t.Fatalf("ring row %+v", r)
	}
	if r := rows[1]; r.Impl != "diode" || r.NsOp != 100 || r.AllocsOp != 1 {
		t.Fatalf("diode row %+v", r)
	}
}
