# ruff: noqa: F821
# The lines `mattermost-notify jupyter enable` adds to
# ~/.ipython/profile_default/ipython_kernel_config.py (and `disable` removes).
# Copy them there by hand if you prefer: every new kernel then loads %notify.
# (c = get_config() is already at the top of that file when IPython created it.)

# >>> mattermost-notify autoload >>>
# managed by `mattermost-notify jupyter enable/disable`; loads %notify in every kernel
c.InteractiveShellApp.extensions.append("mattermost_notify")
# <<< mattermost-notify autoload <<<
