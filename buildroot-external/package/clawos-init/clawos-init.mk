################################################################################
#
# clawos-init
#
################################################################################

# The shared overlay is the source: one /init and one set of checks for both backends.
CLAWOS_INIT_VERSION = 1.0
CLAWOS_INIT_SITE = $(BR2_EXTERNAL_CLAWOS_PATH)/board/clawos/rootfs-overlay
CLAWOS_INIT_SITE_METHOD = local
CLAWOS_INIT_LICENSE = Apache-2.0

# expect.env records the release and LSMs of the kernel that boots this rootfs:
# Buildroot's own kernel, or (clawos-build's default) the one task A-01 built,
# whose output dir clawos-build passes as CLAWOS_KERNEL_DIR (kernel.release and
# config there).
CLAWOS_INIT_DEPENDENCIES = $(if $(BR2_LINUX_KERNEL),linux)
CLAWOS_INIT_KERNEL_RELEASE = $(if $(BR2_LINUX_KERNEL),$(LINUX_VERSION_PROBED),`cat $(CLAWOS_KERNEL_DIR)/kernel.release`)
CLAWOS_INIT_KERNEL_CONFIG = $(if $(BR2_LINUX_KERNEL),$(LINUX_DIR)/.config,$(CLAWOS_KERNEL_DIR)/config)

define CLAWOS_INIT_INSTALL_TARGET_CMDS
	test -s $(CLAWOS_INIT_KERNEL_CONFIG) || { \
		echo "clawos-init: no kernel config at $(CLAWOS_INIT_KERNEL_CONFIG) (set CLAWOS_KERNEL_DIR to A-01's output dir)" >&2; \
		exit 1; }
	$(INSTALL) -D -m 0755 $(@D)/init $(TARGET_DIR)/init
	$(INSTALL) -D -m 0644 $(@D)/usr/lib/clawos/checks.sh $(TARGET_DIR)/usr/lib/clawos/checks.sh
	mkdir -p $(TARGET_DIR)/etc/clawos
	release=$(CLAWOS_INIT_KERNEL_RELEASE); \
	lsms=`sed -n 's/^CONFIG_LSM="\(.*\)"$$/\1/p' $(CLAWOS_INIT_KERNEL_CONFIG) | tr , ' '`; \
	printf '%s\n' \
		"# Written by clawos-init (Buildroot): what the in-guest checks expect." \
		"ARCH='$(call qstrip,$(BR2_PACKAGE_CLAWOS_INIT_ARCH))'" \
		"KERNEL_RELEASE='$$release'" \
		"LSMS='$$lsms'" \
		"CPU_FLAGS='$(call qstrip,$(BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS))'" \
		>$(TARGET_DIR)/etc/clawos/expect.env
endef

$(eval $(generic-package))
