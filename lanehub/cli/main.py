"""The `lanehub` console entry: it only gathers the command groups.

``edge``, ``hq`` and ``bench`` register their click groups under the
``lanehub.commands`` entry point, so lanehub imports none of them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from lanehub.chain.demo import demo


class LanehubGroup(click.Group):
    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group="lanehub.commands")}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


@click.group(cls=LanehubGroup)
@click.version_option(package_name="lanehub")
def main():
    """lanehub: edge boxes and HQ for retail chains."""


main.add_command(demo)


if __name__ == "__main__":
    main()
