"""README.md's quoted numbers, recomputed (slow: a scale sweep to 65,536 devices).

README: "the same job on Ascend 910Bs stops getting faster past about 32K devices, where goodput
falls through 40%" (`podsim train llama3-70b-ascend-910b --scale 1024:65536`)."""

from podsim.front.sweep import scale_sweep


def test_the_ascend_sweep_stops_getting_faster_at_32k_where_goodput_falls_through_40pct():
    sizes = [1024 * 2**k for k in range(7)]
    rows = {r["devices"]: r for r in scale_sweep("llama3-70b-ascend-910b", sizes)}
    fastest = min(rows, key=lambda d: rows[d]["time_to_train_p50_s"])
    assert fastest == 32768
    assert rows[32768]["goodput"] >= 0.40 > rows[65536]["goodput"]
    assert rows[16384]["goodput"] > 0.40
