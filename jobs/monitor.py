from nurture_lake.jobs.monitor import main

if __name__ == "__main__":
    main()
