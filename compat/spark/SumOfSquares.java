import java.util.ArrayList;
import java.util.List;

import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * A SparkPi-like job whose answer is checkable: for each of ROUNDS rounds it sums i*i + round over
 * i = 1..N in PARTITIONS tasks (each task sleeps SLEEP_MS so the job lasts long enough to lose a
 * master in the middle), and compares the total with the closed form
 * ROUNDS * N(N+1)(2N+1)/6 + N * ROUNDS(ROUNDS-1)/2.
 *
 * Usage: SumOfSquares N PARTITIONS ROUNDS SLEEP_MS
 *
 * Prints one "ROUND r sum=... at=<epoch ms>" line per round and a final
 * "RESULT total=T expected=E correct=true|false" line; exits 0 only when correct.
 */
public final class SumOfSquares {
    public static void main(String[] args) throws Exception {
        final long n = Long.parseLong(args[0]);
        final int partitions = Integer.parseInt(args[1]);
        final int rounds = Integer.parseInt(args[2]);
        final long sleepMs = Long.parseLong(args[3]);

        SparkConf conf = new SparkConf().setAppName("SumOfSquares");
        long total = 0;
        try (JavaSparkContext sc = new JavaSparkContext(conf)) {
            System.out.println("STARTED at=" + System.currentTimeMillis());
            // Partition p holds the range [lo, hi] of 1..n; the tasks compute their range's sum.
            List<long[]> ranges = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                long lo = n * p / partitions + 1;
                long hi = n * (p + 1) / partitions;
                ranges.add(new long[] {lo, hi});
            }
            for (int round = 0; round < rounds; round++) {
                final long offset = round;
                long sum = sc.parallelize(ranges, partitions).map(range -> {
                    Thread.sleep(sleepMs);
                    long s = 0;
                    for (long i = range[0]; i <= range[1]; i++) {
                        s += i * i + offset;
                    }
                    return s;
                }).reduce(Long::sum);
                total += sum;
                System.out.println("ROUND " + round + " sum=" + sum + " at=" + System.currentTimeMillis());
            }
        }
        long expected = rounds * (n * (n + 1) * (2 * n + 1) / 6) + n * ((long) rounds * (rounds - 1) / 2);
        boolean correct = total == expected;
        System.out.println("RESULT total=" + total + " expected=" + expected + " correct=" + correct);
        System.exit(correct ? 0 : 1);
    }
}
