"""nbsim's help text and name, torch-free: `nbsim -h` must answer without importing torch
(simulator/entry.py prints it before anything heavy is loaded)."""

PROG = "nbsim"
USAGE = """usage: nbsim -cell a b c al be ga | -mat FILE  [-hkl FILE | -default_F F]  [options]

Same flags, units and defaults as nanoBragg (simulator/README.md lists the deviations).
  crystal     -cell a b c al be ga (Å, deg)  -mat FILE  -misset rx ry rz | random  -misset_seed N
              -N n  -Na -Nb -Nc n  -samplesize mm (-sample_x/_y/_z …)  -square_xtal -round_xtal
              -gauss_xtal -tophat_xtal (-tophat_spots)  -fudge f
  F           -hkl FILE  -default_F F  -interpolate  -nointerpolate
  beam        -lambda Å  -energy eV  -dispersion %  -dispsteps n  -divergence mrad  -hdivrange/-vdivrange mrad
              -hdivstep/-vdivstep mrad  -hdivsteps/-vdivsteps/-divsteps n  -round_div -square_div
              -sourcefile FILE  -polar K  -nopolar  -polar_vector x y z  -beam_vector x y z
              -fluence ph/m²  -flux ph/s  -exposure s  -beamsize mm  -water µm  -dmin Å
  spindle     -phi deg  -osc deg  -phistep deg  -phisteps n  -spindle_axis x y z
  mosaic      -mosaic|-mosaicity deg  -mosaic_domains n  -mosaic_seed n
  detector    -distance mm  -close_distance mm  -detsize mm (-detsize_f/_s)  -detpixels n (-detpixels_f/_s)
              -pixel mm  -Xbeam -Ybeam mm  -Xclose -Yclose mm  -ORGX -ORGY px  -pivot beam|sample
              -mosflm -denzo -adxv -xds -dials  -fdet_vector/-sdet_vector/-odet_vector x y z
              -twotheta deg  -twotheta_axis x y z  -detector_rotx/-roty/-rotz deg  -curved_det
              -point_pixel  -detector_thick µm  -detector_abs|-detector_absorb µm|inf  -thicksteps n
  sampling    -oversample n  -oversample_thick -oversample_polar -oversample_omega  -roi xmin xmax ymin ymax
  output      -floatfile F  -intfile F  -noisefile F  -pgmfile F  -scale s  -pgmscale s  -adc counts
              -seed n  -nonoise -nopgm
  tracing     -trace_pixel S F (slow fast; repeatable)  -trace_roi xmin xmax ymin ymax  -trace_dump F.npz
              -trace_pixels_from FILE|- ("S F" lines, read after setup until EOF; none → exit 0 quietly)
              -trace_pixels_after FILE|- (the same, read after the image is written and the line
                "nbsim: image written" is on stderr; the trace holds the -trace_pixel pixels and these)
  execution   -dtype float64|float32  -device cpu|cuda  -compile  -progress -noprogress
  limits      -max_steps n (terms per pixel, default 1000000)  -max_pixels n (default 268435456)
  faults      --inject NAME (repeatable)  --list-injections (name, incident row, what it does)
  about       -h --help  -V --version   (the simulator needs torch: pip install 'nbtrace[sim]')
"""
