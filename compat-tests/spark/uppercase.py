"""A Spark Structured Streaming query (pyspark, local[2]): the Kafka source reads every record
of the input topic not yet processed, as the query's checkpoint says, upper-cases the values and
the Kafka sink writes key and value to the output topic; trigger(availableNow) stops the query
once it has caught up. The query runs, from the same checkpoint, once for each "run" line on
standard input, and prints "caught up" each time it has stopped; end of input stops Spark.

Usage: uppercase.py BOOTSTRAP INPUT OUTPUT CHECKPOINT_DIR JARS (comma-separated: the Kafka
source and sink with their dependencies)."""

import sys

from pyspark.sql import SparkSession
from pyspark.sql.functions import col, upper

bootstrap, source, sink, checkpoint, jars = sys.argv[1:6]
spark = (SparkSession.builder.master("local[2]").appName("gregor-uppercase")
         .config("spark.jars", jars)
         .config("spark.driver.memory", "512m")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .getOrCreate())
spark.sparkContext.setLogLevel("WARN")
for line in sys.stdin:
    if line.strip() != "run":
        continue
    records = (spark.readStream.format("kafka")
               .option("kafka.bootstrap.servers", bootstrap)
               .option("subscribe", source)
               .option("startingOffsets", "earliest")
               .load())
    query = (records.select(col("key"), upper(col("value").cast("string")).alias("value"))
             .writeStream.format("kafka")
             .option("kafka.bootstrap.servers", bootstrap)
             .option("topic", sink)
             .option("checkpointLocation", checkpoint)
             .trigger(availableNow=True)
             .start())
    query.awaitTermination()
    print("caught up", flush=True)
spark.stop()
