# Sourced by the dev and test commands: the settings that point every AWS client at the emulator.
# Dummy credentials and no metadata service, so nothing here can reach a real AWS account.
export AWS_REGION="${AWS_REGION:-eu-west-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true

# The toolchain rust-toolchain.toml names, without a download: where the machine's stable
# toolchain is that very version but known only as "stable", it is linked under the pinned name.
ensure_toolchain() {
  local ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
  local want
  want="$(sed -n 's/^channel = "\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")"
  rustup toolchain list | grep -q "^$want" && return
  local stable
  stable="$(rustc +stable --version 2>/dev/null | cut -d' ' -f2)"
  if [ "$stable" = "$want" ]; then
    rustup toolchain link "$want" "$(rustc +stable --print sysroot)"
  else
    echo "rust-toolchain.toml wants Rust $want; this machine has ${stable:-no stable toolchain}" >&2
    return 1
  fi
}

# Starts the emulator (dev/emulator.py) on 127.0.0.1:$1 in the background unless one already answers there;
# its log goes to $2. Sets MOTO_PID when it started one.
start_emulator() {
  local port="$1" log="$2"
  MOTO_PID=""
  if emulator_answers "$port"; then
    echo "emulator already running on 127.0.0.1:$port"
    return
  fi
  "$ROOT/.venv/bin/python" "$ROOT/dev/emulator.py" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 120); do
    emulator_answers "$port" && return
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$log" >&2; echo "the emulator did not start" >&2; return 1; }
    sleep 0.25
  done
  echo "the emulator did not answer on 127.0.0.1:$port" >&2
  return 1
}

emulator_answers() {
  "$ROOT/.venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_local/health", timeout=1)
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every command that sources this file uses cargo next.
ensure_toolchain
