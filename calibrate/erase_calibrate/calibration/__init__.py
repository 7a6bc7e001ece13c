"""Old name, kept until erase-eval's branch is rewired: the search is search/, item sources are tasks/."""
