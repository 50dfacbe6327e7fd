"""Draws the documentation's diagrams (SVG) with matplotlib.

    python docs/figures/make_figures.py            # writes docs/figures/*.svg
    python docs/figures/make_figures.py OUT_DIR    # writes them elsewhere

The diagrams are drawn from code, not by hand, so that they can be changed
with the library: the number of levels, the names and the colours are the
constants below. Text stays text in the SVG (`svg.fonttype: none`), which
keeps the files small and searchable.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "keras-recursive-ae",
        "font.family": "sans-serif",
        "font.size": 10,
    }
)

TRAINED = "#f4a259"  # trained in this stage
FROZEN = "#7fa7d9"  # frozen: no weight updates, batch norms in inference mode
DONE = "#d9d9d9"  # trained earlier, not part of this stage
UNTRAINED = "#ffffff"  # not trained yet, not part of this stage
TENSOR = "#eeeeee"
NORM = "#8fd694"
INK = "#333333"
FIGURE_NAMES = ("architecture", "stages", "shared_batch_norm")


def _box(ax, x, y, w, h, text, color, dashed=False, fontsize=10, weight="normal"):
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor=INK,
            linewidth=1.0,
            linestyle="--" if dashed else "-",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight, color=INK)


def _arrow(ax, start, end, color=INK, style="-|>", dashed=False, rad=0.0):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=10,
            color=color,
            linewidth=1.0,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
        )
    )


def _canvas(width, height):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    return fig, ax


def _u_shape(ax, x0, y_top, y_bottom, depth, colors=None, labels=True, step=1.25):
    """Encoder along the top (left to right), decoder along the bottom.

    Level k's encoder block E_k sits right above its mirror D_k. Returns the
    x position of every tensor T_0..T_n.
    """
    colors = colors or {}
    xs = [x0 + step * k for k in range(depth + 1)]
    w, h = 0.62, 0.42
    for k in range(depth + 1):
        if labels:
            _box(ax, xs[k], y_top, 0.46, 0.34, f"T$_{k}$", TENSOR, fontsize=9)
            if k < depth:
                _box(
                    ax,
                    xs[k],
                    y_bottom,
                    0.46,
                    0.34,
                    f"$\\hat{{\\mathrm{{T}}}}_{k}$",
                    TENSOR,
                    fontsize=9,
                )
    for k in range(1, depth + 1):
        xm = (xs[k - 1] + xs[k]) / 2
        enc_color, enc_dashed = colors.get(("E", k), (TRAINED, False))
        dec_color, dec_dashed = colors.get(("D", k), (TRAINED, False))
        _box(ax, xm, y_top, w, h, f"E$_{k}$", enc_color, dashed=enc_dashed)
        _box(ax, xm, y_bottom, w, h, f"D$_{k}$", dec_color, dashed=dec_dashed)
        if labels:
            _arrow(ax, (xs[k - 1] + 0.23, y_top), (xm - w / 2, y_top))
            _arrow(ax, (xm + w / 2, y_top), (xs[k] - 0.23, y_top))
            right = xs[k] - 0.23 if k < depth else xs[k]
            _arrow(ax, (right, y_bottom), (xm + w / 2, y_bottom))
            _arrow(ax, (xm - w / 2, y_bottom), (xs[k - 1] + 0.23, y_bottom))
    if labels:
        # T_n feeds the innermost decoder block.
        _arrow(ax, (xs[depth], y_top - 0.17), (xs[depth], y_bottom))
    return xs


def architecture():
    """The symmetric autoencoder: levels, tensors and their mirrors."""
    depth = 3
    fig, ax = _canvas(7.4, 3.3)
    xs = _u_shape(ax, 1.0, 2.3, 1.0, depth, step=1.55)
    shapes = ["32×32×3", "16×16×16", "8×8×32", "4×4×64"]
    for k, x in enumerate(xs):
        ax.text(x, 2.72, shapes[k], ha="center", fontsize=8, color="#555555")
    ax.text(xs[0] - 0.45, 2.3, "images", ha="right", va="center", fontsize=9)
    ax.text(xs[0] - 0.45, 1.0, "rebuilt\nimages", ha="right", va="center", fontsize=9)
    ax.text(xs[-1] + 0.35, 1.65, "code\nT$_n$ (n = 3)", ha="left", va="center", fontsize=9)
    for k in range(1, depth + 1):
        xm = (xs[k - 1] + xs[k]) / 2
        ax.text(xm, 0.45, f"level {k}", ha="center", fontsize=9, color="#555555")
        ax.plot([xm, xm], [1.24, 2.06], color="#aaaaaa", linewidth=0.8, linestyle=":")
    ax.text(
        0.15,
        3.1,
        "Level k: E$_k$ maps T$_{k-1}$ → T$_k$; its mirror D$_k$ maps T$_k$ back "
        "to the shape of T$_{k-1}$.",
        fontsize=9,
        va="center",
    )
    return fig


def stages():
    """Greedy training: what each stage trains, freezes and leaves alone."""
    depth = 3
    fig, ax = _canvas(8.4, 5.4)
    origins = [(0.2, 5.0), (4.4, 5.0), (0.2, 2.6), (4.4, 2.6)]
    for panel, (px, py) in enumerate(origins):
        stage = panel + 1
        y_top, y_bottom = py - 0.75, py - 1.65
        colors = {}
        for k in range(1, depth + 1):
            if stage > depth:  # the assembled autoencoder
                colors[("E", k)] = colors[("D", k)] = (DONE, False)
            elif k < stage:
                colors[("E", k)] = (FROZEN, False)
                colors[("D", k)] = (DONE, True)
            elif k == stage:
                colors[("E", k)] = colors[("D", k)] = (TRAINED, False)
            else:
                colors[("E", k)] = colors[("D", k)] = (UNTRAINED, True)
        xs = _u_shape(ax, px + 0.9, y_top, y_bottom, depth, colors=colors, labels=False, step=1.05)
        if stage <= depth:
            title = f"Stage {stage}"
            source_text = {
                1: "T$_0$, the images",
                2: "T$_1$, computed by frozen E$_1$",
                3: "T$_2$, computed by frozen E$_1$, E$_2$",
            }[stage]
            note = f"E$_{stage}$, D$_{stage}$ learn to rebuild {source_text}"
            source = xs[stage - 1] + 0.12
            _arrow(
                ax,
                (source, y_top - 0.2),
                (source, y_bottom + 0.2),
                color="#c0392b",
                style="<|-|>",
                dashed=True,
            )
            ax.text(
                source - 0.06,
                (y_top + y_bottom) / 2,
                "MSE",
                ha="right",
                va="center",
                fontsize=8,
                color="#c0392b",
            )
        else:
            title = "After the last stage"
            note = "the levels form the full autoencoder, with no end-to-end pass"
        ax.text(px, py, title, fontsize=11, weight="bold", va="center")
        ax.text(px, py - 0.3, note, fontsize=8, va="center", color="#555555")
    legend = [
        (TRAINED, False, "trained in this stage"),
        (FROZEN, False, "frozen (inference mode)"),
        (DONE, True, "trained earlier, not in this stage"),
        (UNTRAINED, True, "not trained yet"),
    ]
    for i, (color, dashed, text) in enumerate(legend):
        x = 0.4 + (0, 1.75, 3.75, 6.35)[i]
        _box(ax, x, 0.3, 0.3, 0.22, "", color, dashed=dashed)
        ax.text(x + 0.22, 0.3, text, fontsize=7.5, va="center")
    return fig


def shared_batch_norm():
    """Where one SharedBatchNorm sits: the end of E_k and the end of D_{k+1}."""
    fig, ax = _canvas(7.6, 4.0)
    y_enc, y_dec = 3.0, 1.0
    grey = "#555555"
    # Encoder: T_{k-1} -> [conv, act, norm] = E_k -> T_k -> E_{k+1} ...
    _box(ax, 0.6, y_enc, 0.7, 0.4, "T$_{k-1}$", TENSOR, fontsize=9)
    _box(ax, 1.75, y_enc, 0.9, 0.4, "Conv2D", TRAINED, fontsize=9)
    _box(ax, 2.85, y_enc, 0.8, 0.4, "SELU", TRAINED, fontsize=9)
    _box(ax, 4.1, y_enc, 1.2, 0.4, "norm$_k$\nsite=encoder", NORM, fontsize=8)
    _box(ax, 5.35, y_enc, 0.6, 0.4, "T$_k$", TENSOR, fontsize=9)
    _box(ax, 6.55, y_enc, 0.9, 0.4, "E$_{k+1}$ …", DONE, fontsize=9)
    for a, b in ((0.95, 1.3), (2.2, 2.45), (3.25, 3.5), (4.7, 5.05), (5.65, 6.1)):
        _arrow(ax, (a, y_enc), (b, y_enc))
    ax.plot([1.3, 4.7], [3.5, 3.5], color=grey, linewidth=0.8)
    ax.text(3.0, 3.62, "encoder block E$_k$", ha="center", fontsize=9)
    ax.text(
        4.1,
        2.6,
        "training: batch statistics,\nupdates the moving ones",
        ha="center",
        va="center",
        fontsize=7.5,
        color=grey,
    )
    # Decoder: ... D_{k+2} -> T^_{k+1} -> [convT, act, norm] = D_{k+1} -> T^_k
    _box(ax, 6.55, y_dec, 0.9, 0.4, "… $\\hat{\\mathrm{T}}_{k+1}$", DONE, fontsize=9)
    _box(ax, 5.35, y_dec, 1.2, 0.4, "Conv2D-\nTranspose", TRAINED, fontsize=8)
    _box(ax, 4.1, y_dec, 0.8, 0.4, "SELU", TRAINED, fontsize=9)
    _box(ax, 2.85, y_dec, 1.2, 0.4, "norm$_k$\nsite=decoder", NORM, fontsize=8)
    _box(ax, 1.6, y_dec, 0.6, 0.4, "$\\hat{\\mathrm{T}}_k$", TENSOR, fontsize=9)
    for a, b in ((6.1, 5.95), (4.75, 4.5), (3.7, 3.45), (2.25, 1.9)):
        _arrow(ax, (a, y_dec), (b, y_dec))
    ax.plot([2.25, 5.95], [0.5, 0.5], color=grey, linewidth=0.8)
    ax.text(4.1, 0.3, "decoder block D$_{k+1}$", ha="center", fontsize=9)
    ax.text(
        2.85,
        1.42,
        'moving statistics, no update\n(decoder_statistics="encoder")',
        ha="center",
        va="center",
        fontsize=7.5,
        color=grey,
    )
    # One layer, two call sites.
    _arrow(
        ax, (4.75, y_enc - 0.55), (3.6, y_dec + 0.62), color="#2e7d32", style="<|-|>", dashed=True
    )
    ax.text(
        4.35,
        2.0,
        "the same layer: one γ, β,\none moving mean and variance",
        ha="left",
        va="center",
        fontsize=8,
        color="#2e7d32",
    )
    ax.text(
        0.15,
        2.0,
        "$\\hat{\\mathrm{T}}_k$ is rebuilt in the\nnormalized space of\nits target T$_k$",
        ha="left",
        va="center",
        fontsize=8,
        color=grey,
    )
    return fig


def main(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FIGURE_NAMES:
        fig = globals()[name]()
        fig.savefig(out_dir / f"{name}.svg", metadata={"Date": None})
        plt.close(fig)
        print(out_dir / f"{name}.svg")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent)
