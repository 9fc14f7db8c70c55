#!/usr/bin/env bash
# Fetch Apache Spark (the distribution inside pyspark's source package on PyPI) and unpack its
# Spark home (bin/spark-class, sbin/, jars/) into a cache directory. Idempotent: a second run
# finds the unpacked home and does nothing. Prints the Spark home on stdout.
#
#   scripts/spark-fetch.sh            # -> ${SPARK_CACHE:-$HOME/.cache/minizk-spark}/spark-4.3.0
#
# SPARK_VERSION (default 4.3.0) picks another pyspark release that carries deps/ (3.5.x, 4.x).
set -euo pipefail

version="${SPARK_VERSION:-4.3.0}"
cache="${SPARK_CACHE:-$HOME/.cache/minizk-spark}"
home="$cache/spark-$version"

if [[ -x "$home/bin/spark-class" && -f "$home/.complete" ]]; then
    echo "$home"
    exit 0
fi

mkdir -p "$cache"
download="$cache/download-$version"
mkdir -p "$download"
archive="$download/pyspark-$version.tar.gz"
if [[ ! -f "$archive" ]]; then
    echo "spark-fetch: downloading pyspark==$version (source distribution, ~450 MB)" >&2
    # --no-binary :all: gives the sdist, the one that carries a whole Spark home under deps/.
    python3 -m pip download --quiet --no-deps --no-binary :all: "pyspark==$version" -d "$download" >&2
fi
[[ -f "$archive" ]] || { echo "spark-fetch: $archive missing after download" >&2; exit 1; }

staging="$(mktemp -d "$cache/unpack.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
echo "spark-fetch: unpacking the Spark home into $home" >&2
tar -xzf "$archive" -C "$staging" "pyspark-$version/deps/bin" "pyspark-$version/deps/sbin" \
    "pyspark-$version/deps/jars"
# Spark's launcher looks for RELEASE or jars/ to know it is a packaged distribution.
echo "Spark $version (from pyspark $version on PyPI)" > "$staging/pyspark-$version/deps/RELEASE"
chmod +x "$staging/pyspark-$version/deps/bin/"* "$staging/pyspark-$version/deps/sbin/"*
rm -rf "$home"
mv "$staging/pyspark-$version/deps" "$home"
touch "$home/.complete"
# The archive is only needed until the home is unpacked.
rm -rf "$download"
echo "$home"
