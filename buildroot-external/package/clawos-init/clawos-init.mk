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
# expect.env needs the built kernel's release and final CONFIG_LSM.
CLAWOS_INIT_DEPENDENCIES = linux

define CLAWOS_INIT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/init $(TARGET_DIR)/init
	$(INSTALL) -D -m 0644 $(@D)/usr/lib/clawos/checks.sh $(TARGET_DIR)/usr/lib/clawos/checks.sh
	mkdir -p $(TARGET_DIR)/etc/clawos
	release=$(LINUX_VERSION_PROBED); \
	lsms=`sed -n 's/^CONFIG_LSM="\(.*\)"$$/\1/p' $(LINUX_DIR)/.config | tr , ' '`; \
	printf '%s\n' \
		"# Written by clawos-init (Buildroot): what the in-guest checks expect." \
		"ARCH='$(call qstrip,$(BR2_PACKAGE_CLAWOS_INIT_ARCH))'" \
		"KERNEL_RELEASE='$$release'" \
		"LSMS='$$lsms'" \
		"CPU_FLAGS='$(call qstrip,$(BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS))'" \
		>$(TARGET_DIR)/etc/clawos/expect.env
endef

$(eval $(generic-package))
