package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// producerSettings choose how a producer writes.
type producerSettings struct {
	// Acks is "all" (franz-go's default), "leader" or "none".
	Acks string `json:"acks"`
	// Idempotent is franz-go's default (true); acks other than all need false.
	Idempotent *bool `json:"idempotent"`
	// Compression is "none" (the default), "gzip", "snappy", "lz4" or "zstd".
	Compression string `json:"compression"`
	// Manual sends each record to its own partition (kgo's ManualPartitioner).
	Manual bool `json:"manual"`
	// BatchMaxBytes caps a record batch (kgo's ProducerBatchMaxBytes; default 1,000,012).
	BatchMaxBytes int32 `json:"batchMaxBytes"`
}

func (s producerSettings) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch s.Acks {
	case "", "all":
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, fmt.Errorf("unknown acks %q", s.Acks)
	}
	if s.Idempotent != nil && !*s.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	codecs := map[string]kgo.CompressionCodec{
		"": kgo.NoCompression(), "none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	codec, ok := codecs[s.Compression]
	if !ok {
		return nil, fmt.Errorf("unknown compression %q", s.Compression)
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	if s.Manual {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if s.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(s.BatchMaxBytes))
	}
	return opts, nil
}

// newProducer makes a kgo client that produces as p says, with extra added.
func (c common) newProducer(p producerSettings, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := p.opts()
	if err != nil {
		return nil, err
	}
	return c.newClient(append(opts, extra...)...)
}

// throttles counts the throttles brokers give the client (kgo.HookBrokerThrottle).
type throttles struct {
	sync.Mutex
	count int
	max   time.Duration
}

func (t *throttles) OnBrokerThrottle(_ kgo.BrokerMetadata, interval time.Duration, _ bool) {
	t.Lock()
	defer t.Unlock()
	t.count++
	t.max = max(t.max, interval)
}

// produce writes the given records (or count generated ones of recordBytes:
// the index in six digits, then "x"s) in one ProduceSync (kgo batches them per
// partition) and prints {"event":"produced","record","error"} for each, in the
// order given, then {"event":"done","ms","throttles","maxThrottleMs"}: the time
// ProduceSync took (the topic's metadata included), and the throttles brokers gave.
func produce(raw []byte) error {
	var s struct {
		common
		producerSettings
		Topic       string   `json:"topic"`
		Records     []record `json:"records"`
		Count       int      `json:"count"`
		RecordBytes int      `json:"recordBytes"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	var throttled throttles
	cl, err := s.newProducer(s.producerSettings, kgo.WithHooks(&throttled))
	if err != nil {
		return err
	}
	defer cl.Close()
	toSend := make([]*kgo.Record, len(s.Records), len(s.Records)+s.Count)
	for i, r := range s.Records {
		toSend[i] = r.toKgo(s.Topic)
	}
	for i := 0; i < s.Count; i++ {
		value := fmt.Sprintf("%06d", i) + strings.Repeat("x", max(s.RecordBytes-6, 0))
		toSend = append(toSend, &kgo.Record{Topic: s.Topic, Value: []byte(value)})
	}
	started := time.Now()
	// ProduceSync answers as partitions complete; the tests want the order given.
	errs := map[*kgo.Record]error{}
	for _, result := range cl.ProduceSync(context.Background(), toSend...) {
		errs[result.Record] = result.Err
	}
	took := time.Since(started)
	for _, r := range toSend {
		emitRecord("produced", r, errs[r])
	}
	throttled.Lock()
	count, longest := throttled.count, throttled.max
	throttled.Unlock()
	emit("done", fields{"ms": took.Milliseconds(), "throttles": count, "maxThrottleMs": longest.Milliseconds()})
	return nil
}

// emitRecord prints a produced record's partition, offset and contents, or
// the error that kept it out.
func emitRecord(event string, r *kgo.Record, err error) {
	emit(event, fields{"record": fromKgo(r), "error": errorName(err)})
}

// stream produces records "<prefix>-<i>" for i = 0, 1, ..., one every
// intervalMs, to partition i % partitions, until stdin says "stop"; it prints
// {"event":"produced", ...} as each is acknowledged (or fails), then flushes
// and prints {"event":"done", "sent": n}.
func stream(raw []byte) error {
	var s struct {
		common
		producerSettings
		Topic      string `json:"topic"`
		Partitions int32  `json:"partitions"`
		Prefix     string `json:"prefix"`
		IntervalMs int    `json:"intervalMs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	s.Manual = true
	cl, err := s.newProducer(s.producerSettings)
	if err != nil {
		return err
	}
	defer cl.Close()
	stop := untilStopped()
	sent := 0
	for ; stop.Err() == nil; sent++ {
		value := fmt.Sprintf("%s-%d", s.Prefix, sent)
		r := &kgo.Record{Topic: s.Topic, Partition: int32(sent) % s.Partitions, Value: []byte(value)}
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) { emitRecord("produced", r, err) })
		select {
		case <-stop.Done():
		case <-time.After(time.Duration(s.IntervalMs) * time.Millisecond):
		}
	}
	if err := cl.Flush(context.Background()); err != nil {
		return err
	}
	emit("done", fields{"sent": sent})
	return nil
}
