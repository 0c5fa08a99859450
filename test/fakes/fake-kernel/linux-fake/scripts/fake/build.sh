#!/bin/sh
# The default target: a fake image, a vmlinux ELF (with .BTF when
# CONFIG_DEBUG_INFO_BTF=y), System.map and the signing tools Linux leaves in O=.
set -e
cfg=$obj/.config
test -f "$cfg" || { echo "fake-kernel: no .config in $obj" >&2; exit 2; }
echo "  CC      init/main.o"
if grep -q '^CONFIG_FAKE_BREAK_BUILD=y' "$cfg"; then
  echo "  CC      fake/broken.o"
  echo "fake/broken.c:3:1: error: expected ';' before '}' token" >&2
  echo "make[2]: *** [scripts/Makefile.build:250: fake/broken.o] Error 1" >&2
  exit 2
fi
mkdir -p "$obj/$(dirname "$IMAGE")" "$obj/scripts" "$obj/certs"
echo "  LD      vmlinux"
if grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$cfg"; then
  printf 'fake btf' > "$obj/.btf.bin"
  "${CROSS_COMPILE}objcopy" --add-section .BTF="$obj/.btf.bin" /bin/true "$obj/vmlinux"
else
  cp /bin/true "$obj/vmlinux"
fi
echo "ffffffff81000000 T _text" > "$obj/System.map"
echo "fake $ARCH kernel image" > "$obj/$IMAGE"
echo "  BUILD   $IMAGE"
cp "$src/scripts/fake/sign-file" "$obj/scripts/sign-file"
chmod +x "$obj/scripts/sign-file"
echo "fake private key" > "$obj/certs/signing_key.pem"
echo "fake certificate" > "$obj/certs/signing_key.x509"
