import sys

from dense_warper_ros.train.cli import main

sys.exit(main())
