// Command bench measures lavinmq-go end to end against a broker, each
// scenario side by side with a plain amqp091-go implementation of the same
// work, on the same broker, in the same run.
//
//	go run ./bench run [-quick] [-url URL] [-out bench/results]   all scenarios, results + plots
//	go run ./bench run -soak [-soak-duration 10m] [-soak-restart 2m]  only the soak scenario (bench/run.sh --soak)
//	go run ./bench report [-out bench/results]                     regenerate REPORT.md from the results
//	go run ./bench plot [-out bench/results]                       regenerate the plots
//	go run ./bench seed [-out bench/results]                       re-measure the seed's 10_000-enqueue figure
//
// bench/run.sh starts the broker and runs everything. Each sample runs in a
// child process (go run ./bench worker ...) so that its CPU time and peak RSS
// are the client's alone.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(args)
	case "worker":
		err = workerCmd(args)
	case "report":
		err = reportCmd(args)
	case "plot":
		err = plotCmd(args)
	case "seed":
		fs := flag.NewFlagSet("seed", flag.ExitOnError)
		out := outFlag(fs)
		_ = fs.Parse(args)
		err = writeJSON(*out+"/seed.json", measureSeed())
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench run [-quick] [-url URL] [-out DIR] | run -soak [-soak-duration D] [-soak-restart D] [-url URL] [-out DIR] | report [-out DIR] | plot [-out DIR] | seed [-out DIR]")
	os.Exit(2)
}

func outFlag(fs *flag.FlagSet) *string {
	return fs.String("out", "bench/results", "results directory")
}
