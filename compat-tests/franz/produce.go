package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	return opts, nil
}

// newProducer makes a kgo client that produces as p says.
func (c common) newProducer(p producerSettings) (*kgo.Client, error) {
	opts, err := p.opts()
	if err != nil {
		return nil, err
	}
	return c.newClient(opts...)
}

// produce writes the given records in one ProduceSync (kgo batches them per
// partition) and prints {"event":"produced","record","error"} for each, in the
// order given, then {"event":"done"}.
func produce(raw []byte) error {
	var s struct {
		common
		producerSettings
		Topic   string   `json:"topic"`
		Records []record `json:"records"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	cl, err := s.newProducer(s.producerSettings)
	if err != nil {
		return err
	}
	defer cl.Close()
	toSend := make([]*kgo.Record, len(s.Records))
	for i, r := range s.Records {
		toSend[i] = r.toKgo(s.Topic)
	}
	// ProduceSync answers as partitions complete; the tests want the order given.
	errs := map[*kgo.Record]error{}
	for _, result := range cl.ProduceSync(context.Background(), toSend...) {
		errs[result.Record] = result.Err
	}
	for _, r := range toSend {
		emitRecord("produced", r, errs[r])
	}
	emit("done", nil)
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
