"""PNG charts of a report (`report --chart DIR`): revenue and taps by hour, riders by card type, refusals by
reason. matplotlib with the Agg backend (no display needed); labels carry Chinese names, so a CJK font is used
where the machine has one (Debian: fonts-noto-cjk or fonts-wqy-zenhei), else the names fall back to English.

    paths = draw_charts(build_report(depot, "2026-12-01"), "out/")   # ["out/revenue-by-hour.png", ...]
"""
import os

from host_tools.errors import DepotError

_CJK = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Source Han Sans SC",
        "AR PL UMing CN", "Droid Sans Fallback")


def cjk_font():
    """The name of an installed font with Chinese glyphs, or None."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK:
        if name in have:
            return name
    return None


def _label(name, cjk):
    # "ordinary 普通" -> "ordinary" without a CJK font (matplotlib would draw empty boxes)
    return name if cjk else " ".join(w for w in name.split() if w.isascii())


def draw_charts(rep, folder):
    """Write the report's charts as PNG files into `folder`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise DepotError("--chart %s: %s" % (folder, e.strerror or e))
    font = cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
        plt.rcParams["font.family"] = "sans-serif"
    paths = []
    span = rep["from"] if rep["from"] == rep["to"] else "%s .. %s" % (rep["from"], rep["to"])

    hours = list(range(24))
    revenue = [0.0] * 24
    taps = [0] * 24
    for h in rep["by_hour"]:
        revenue[h["hour"]] += h["revenue"] / 100.0
        taps[h["hour"]] += h["paid"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(hours, revenue, color="#2a7ab0")
    ax.set_xlabel("hour (CST)")
    ax.set_ylabel("revenue, yuan" + (" 收入(元)" if font else ""))
    ax.set_xticks(hours)
    ax2 = ax.twinx()
    ax2.plot(hours, taps, color="#d9541e", marker="o", linewidth=1)
    ax2.set_ylabel("paid taps")
    ax.set_title("Revenue and paid taps by hour, %s" % span)
    paths.append(_save(fig, folder, "revenue-by-hour.png", plt))

    riders = rep["totals"]["riders"]
    fig, ax = plt.subplots(figsize=(7, 4))
    names = sorted(riders)
    ax.barh([_label(n, font) for n in names], [riders[n] for n in names], color="#4c9a4c")
    ax.set_xlabel("paid taps")
    ax.set_title("Riders by card type" + (" 乘客类型" if font else "") + ", %s" % span)
    paths.append(_save(fig, folder, "riders-by-type.png", plt))

    reasons = {}
    for b in rep["refusals"]:
        for r, n in rep["refusals"][b].items():
            reasons[r] = reasons.get(r, 0) + n
    fig, ax = plt.subplots(figsize=(7, 4))
    names = sorted(reasons)
    ax.barh(names or ["(none)"], [reasons[n] for n in names] or [0], color="#b04a4a")
    ax.set_xlabel("refusals")
    ax.set_title("Refusals by reason, %s" % span)
    paths.append(_save(fig, folder, "refusals-by-reason.png", plt))
    return paths


def _save(fig, folder, name, plt):
    path = os.path.join(folder, name)
    fig.tight_layout()
    fig.savefig(path + ".part.png", dpi=100)
    plt.close(fig)
    os.replace(path + ".part.png", path)
    return path
