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
# Like Kbuild: CONFIG_MODULE_SIG_KEY names the key (relative to O=); the default one is
# made once per object tree with fresh randomness, so two trees get two keys. The
# certificate is compiled into the image.
key=$(sed -n 's/^CONFIG_MODULE_SIG_KEY="\(.*\)"/\1/p' "$cfg")
key=${key:-certs/signing_key.pem}
if [ "$key" = certs/signing_key.pem ]; then
  test -f "$obj/$key" || echo "fake private key $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" > "$obj/$key"
else
  test -f "$obj/$key" || { echo "make[1]: *** No rule to make target '$key', needed by 'certs/signing_key.x509'.  Stop." >&2; exit 2; }
fi
echo "fake certificate $(sha256sum < "$obj/$key" | cut -c1-16)" > "$obj/certs/signing_key.x509"
{ echo "fake $ARCH kernel image"; cat "$obj/certs/signing_key.x509"; } > "$obj/$IMAGE"
echo "  BUILD   $IMAGE"
if grep -q '^CONFIG_FAKE_ZBOOT=y' "$cfg"; then
  { echo "fake $ARCH compressed EFI image"; cat "$obj/certs/signing_key.x509"; } > "$obj/arch/$SRCARCH/boot/vmlinuz.efi"
  echo "  ZSTD22  arch/$SRCARCH/boot/vmlinuz.efi"
fi
cp "$src/scripts/fake/sign-file" "$obj/scripts/sign-file"
chmod +x "$obj/scripts/sign-file"
