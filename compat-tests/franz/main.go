// Command franz drives franz-go (kgo and kadm) against a Kafka broker for
// compat-tests/test_franz_go.py:
//
//	franz <command> '<json settings>'
//
// Commands: produce, stream, consume, group, admin, txn, transact (one file
// each); each takes "tls" and "sasl" settings for a secured listener
// (security.go). Every command prints one JSON object per line on stdout, logs
// franz-go's warnings to stderr, and exits by itself: at the latest after
// maxRuntimeMs it prints {"event":"timeout"} and exits 3, so that nothing it
// does can hang the test suite. The long-running commands (stream, group) stop
// cleanly on the stdin line "stop".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// common holds the settings every command takes.
type common struct {
	security
	Bootstrap    string `json:"bootstrap"`
	ClientID     string `json:"clientId"`
	MaxRuntimeMs int    `json:"maxRuntimeMs"`
	Debug        bool   `json:"debug"`
}

const defaultMaxRuntime = 45 * time.Second

var commands = map[string]func(settings []byte) error{
	"produce":  produce,
	"stream":   stream,
	"consume":  consume,
	"group":    group,
	"admin":    admin,
	"txn":      txn,
	"transact": transact,
}

func main() {
	if len(os.Args) != 3 || commands[os.Args[1]] == nil {
		fmt.Fprintf(os.Stderr, "usage: franz <%s> '<json settings>'\n", strings.Join(commandNames(), "|"))
		os.Exit(2)
	}
	settings := []byte(os.Args[2])
	var c common
	if err := json.Unmarshal(settings, &c); err != nil {
		fail(fmt.Errorf("settings: %w", err))
	}
	maxRuntime := defaultMaxRuntime
	if c.MaxRuntimeMs > 0 {
		maxRuntime = time.Duration(c.MaxRuntimeMs) * time.Millisecond
	}
	time.AfterFunc(maxRuntime, func() {
		emit("timeout", fields{"afterMs": maxRuntime.Milliseconds()})
		os.Exit(3)
	})
	if err := commands[os.Args[1]](settings); err != nil {
		fail(err)
	}
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// fail reports a fatal error as an event and exits 1.
func fail(err error) {
	emit("error", fields{"error": errorName(err), "message": err.Error()})
	os.Exit(1)
}

// fields are the members of one output line besides "event".
type fields map[string]any

var stdout = struct {
	sync.Mutex
	*json.Encoder
}{Encoder: json.NewEncoder(os.Stdout)}

// emit prints one JSON line; franz-go's callbacks call it from their goroutines.
func emit(event string, f fields) {
	if f == nil {
		f = fields{}
	}
	f["event"] = event
	stdout.Lock()
	defer stdout.Unlock()
	if err := stdout.Encode(f); err != nil {
		os.Exit(4) // stdout is gone: nobody reads what this would do
	}
}

// errorName is the Kafka error code's name (UNKNOWN_TOPIC_OR_PARTITION, ...) when
// err carries one, else err's text; nil is "".
func errorName(err error) string {
	if err == nil {
		return ""
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

// newClient makes a kgo client for c's bootstrap servers with opts added.
func (c common) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	all, err := c.clientOpts(opts...)
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(all...)
}

func (c common) clientOpts(opts ...kgo.Opt) ([]kgo.Opt, error) {
	secured, err := c.security.opts()
	if err != nil {
		return nil, err
	}
	level := kgo.LogLevelWarn
	if c.Debug {
		level = kgo.LogLevelDebug
	}
	clientID := c.ClientID
	if clientID == "" {
		clientID = "gregor-compat-franz"
	}
	all := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...),
		kgo.ClientID(clientID),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)),
	}
	return append(append(all, secured...), opts...), nil
}

// untilStopped is a context canceled when stdin says "stop" (or closes).
func untilStopped() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			if strings.TrimSpace(lines.Text()) == "stop" {
				return
			}
		}
	}()
	return ctx
}

// record is a record as the tests write and read it: strings for key, value and
// headers, a null key or value for a missing one.
type record struct {
	Partition   *int32      `json:"partition,omitempty"`
	Offset      *int64      `json:"offset,omitempty"`
	Key         *string     `json:"key"`
	Value       *string     `json:"value"`
	Headers     [][2]string `json:"headers,omitempty"`
	TimestampMs *int64      `json:"timestampMs,omitempty"`
}

// toKgo makes the kgo record to produce to topic; partition and timestamp are
// taken when given (the partition only counts with kgo's ManualPartitioner).
func (r record) toKgo(topic string) *kgo.Record {
	out := &kgo.Record{Topic: topic}
	if r.Key != nil {
		out.Key = []byte(*r.Key)
	}
	if r.Value != nil {
		out.Value = []byte(*r.Value)
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
	}
	if r.Partition != nil {
		out.Partition = *r.Partition
	}
	if r.TimestampMs != nil {
		out.Timestamp = time.UnixMilli(*r.TimestampMs)
	}
	return out
}

// fromKgo is what a produced or fetched kgo record holds.
func fromKgo(r *kgo.Record) record {
	out := record{Partition: &r.Partition, Offset: &r.Offset}
	if r.Key != nil {
		key := string(r.Key)
		out.Key = &key
	}
	if r.Value != nil {
		value := string(r.Value)
		out.Value = &value
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, [2]string{h.Key, string(h.Value)})
	}
	ms := r.Timestamp.UnixMilli()
	out.TimestampMs = &ms
	return out
}
