# The ClawOS packages. The repository root (kernel-config/, specs/) is one level
# up: packages that build from it use CLAWOS_REPO_DIR as their local site.
CLAWOS_REPO_DIR = $(realpath $(BR2_EXTERNAL_CLAWOS_PATH)/..)

include $(sort $(wildcard $(BR2_EXTERNAL_CLAWOS_PATH)/package/*/*.mk))
