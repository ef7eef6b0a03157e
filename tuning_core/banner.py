"""The one banner printed when training starts: each active plugin and what it did."""

from __future__ import annotations


class Banner:
    def __init__(self):
        self.entries: list[tuple[str, str]] = []

    def add(self, plugin: str | None, line: str) -> None:
        self.entries.append((plugin or "?", line))

    @property
    def lines(self) -> list[str]:
        return [f"[{plugin}] {line}" for plugin, line in self.entries]

    def print(self) -> None:
        from tuning_core.plugins import plugin_infos

        infos = plugin_infos()
        external = [f"{i.name} ({i.distribution} {i.version})" for i in infos.values() if not i.builtin]
        out = ["***** tuning-core *****", "plugins: " + (", ".join(external) if external else "built-ins only")]
        out += self.lines
        print("\n".join(out), flush=True)
